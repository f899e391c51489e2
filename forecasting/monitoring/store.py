"""Monitoring tables beside the forecast table: references, every evaluation and every decision, readable by operators."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import sqlalchemy as sa

from forecasting.data.contract import ID
from forecasting.monitoring.reference import RunReference

METADATA = sa.MetaData()

EVALUATIONS = sa.Table(
    "monitoring_evaluations",
    METADATA,
    sa.Column("evaluation_date", sa.DateTime, nullable=False),
    sa.Column(ID, sa.String(255), nullable=False),
    sa.Column("weeks", sa.Integer, nullable=False),  # target weeks with an actual since the series' last retrain
    sa.Column("points", sa.Integer, nullable=False),  # (origin, horizon) pairs judged
    sa.Column("live_loss", sa.Float, nullable=False),  # mean point loss
    sa.Column("reference_loss", sa.Float),  # mean reference of those points
    sa.Column("ratio", sa.Float),
    sa.Column("coverage", sa.Float, nullable=False),  # share of actuals inside the outer interval
    sa.Column("statistic", sa.Float, nullable=False),  # the CUSUM now
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("degraded", sa.Boolean, nullable=False),
    sa.Column("pooled_reference", sa.Boolean, nullable=False),  # no backtest of its own (a new series)
    sa.Column("last_week", sa.DateTime),
    sa.Column("reason", sa.String(255), nullable=False),
    sa.Column("evaluated_at", sa.DateTime, nullable=False),
    sa.UniqueConstraint("evaluation_date", ID, name="uq_monitoring_evaluations_key"),
)

REFERENCE_RUNS = sa.Table(
    "monitoring_reference_runs",
    METADATA,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("pooled_level", sa.Float),
    sa.Column("profile", sa.Text, nullable=False),  # JSON: horizon -> factor
    sa.Column("recorded_at", sa.DateTime, nullable=False),
)

REFERENCE_SERIES = sa.Table(
    "monitoring_reference",
    METADATA,
    sa.Column("run_id", sa.String(64), nullable=False, index=True),
    sa.Column(ID, sa.String(255), nullable=False),
    sa.Column("level", sa.Float, nullable=False),
    sa.UniqueConstraint("run_id", ID, name="uq_monitoring_reference_key"),
)

DECISIONS = sa.Table(
    "monitoring_decisions",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("evaluation_date", sa.DateTime, nullable=False),
    sa.Column("week", sa.String(10), nullable=False, index=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("cohort_id", sa.String(64)),
    sa.Column("trigger_run_id", sa.String(250)),
    sa.Column("series", sa.Text, nullable=False),
    sa.Column("n_evaluated", sa.Integer, nullable=False),
    sa.Column("n_degraded", sa.Integer, nullable=False),
    sa.Column("decided_at", sa.DateTime, nullable=False),
)

TRIGGERED = "triggered"


def ensure_tables(engine: sa.Engine) -> None:
    """Create the tables; an evaluations table of the earlier schema is kept as ``..._legacy``."""
    inspector = sa.inspect(engine)
    if inspector.has_table(EVALUATIONS.name):
        columns = {c["name"] for c in inspector.get_columns(EVALUATIONS.name)}
        if "statistic" not in columns and not inspector.has_table(f"{EVALUATIONS.name}_legacy"):
            with engine.begin() as connection:
                connection.execute(sa.text(f"ALTER TABLE {EVALUATIONS.name} RENAME TO {EVALUATIONS.name}_legacy"))
    METADATA.create_all(engine, checkfirst=True)


def record_evaluation(engine: sa.Engine, evaluation_date: pd.Timestamp, judged: pd.DataFrame) -> None:
    """Replace the rows of this evaluation date (a re-evaluation of the same data is idempotent)."""
    when = pd.Timestamp(evaluation_date).to_pydatetime()
    columns = [c.name for c in EVALUATIONS.columns if c.name not in ("evaluation_date", "evaluated_at")]
    frame = judged[columns].astype(object).where(judged[columns].notna(), None)
    now = datetime.now(UTC).replace(tzinfo=None)
    records = [{**r, "evaluation_date": when, "evaluated_at": now} for r in frame.to_dict("records")]
    for record in records:
        record["degraded"], record["pooled_reference"] = bool(record["degraded"]), bool(record["pooled_reference"])
        if record["last_week"] is not None:
            record["last_week"] = pd.Timestamp(record["last_week"]).to_pydatetime()
    with engine.begin() as connection:
        connection.execute(EVALUATIONS.delete().where(EVALUATIONS.c.evaluation_date == when))
        if records:
            connection.execute(EVALUATIONS.insert(), records)


def stored_runs(engine: sa.Engine) -> set[str]:
    with engine.connect() as connection:
        return {str(r) for r in connection.execute(sa.select(REFERENCE_RUNS.c.run_id)).scalars()}


def save_reference(engine: sa.Engine, reference: RunReference) -> None:
    """Keep a run's reference (replacing an earlier copy): it outlives the run folder."""
    levels = reference.levels.dropna()
    rows = [{"run_id": reference.run_id, ID: str(uid), "level": float(level)} for uid, level in levels.items()]
    with engine.begin() as connection:
        connection.execute(REFERENCE_SERIES.delete().where(REFERENCE_SERIES.c.run_id == reference.run_id))
        connection.execute(REFERENCE_RUNS.delete().where(REFERENCE_RUNS.c.run_id == reference.run_id))
        connection.execute(REFERENCE_RUNS.insert(), {
            "run_id": reference.run_id,
            "pooled_level": None if not np.isfinite(reference.pooled_level) else float(reference.pooled_level),
            "profile": json.dumps({str(k): v for k, v in sorted(reference.profile.items())}),
            "recorded_at": datetime.now(UTC).replace(tzinfo=None),
        })
        if rows:
            connection.execute(REFERENCE_SERIES.insert(), rows)


def load_references(engine: sa.Engine, run_ids: Sequence[str]) -> dict[str, RunReference]:
    """The stored references of these runs (runs without one are absent)."""
    wanted = sorted({str(r) for r in run_ids})
    if not wanted:
        return {}
    with engine.connect() as connection:
        runs = connection.execute(sa.select(REFERENCE_RUNS).where(REFERENCE_RUNS.c.run_id.in_(wanted))).mappings().all()
        series = pd.read_sql(sa.select(REFERENCE_SERIES).where(REFERENCE_SERIES.c.run_id.in_(wanted)), connection)
    found = {}
    for run in runs:
        own = series[series["run_id"] == run["run_id"]]
        profile = {int(k): float(v) for k, v in json.loads(run["profile"]).items()}
        pooled = float(run["pooled_level"]) if run["pooled_level"] is not None else float("nan")
        found[run["run_id"]] = RunReference(run["run_id"], pd.Series(own["level"].to_numpy(float), index=own[ID].astype(str)),
                                            profile, pooled)
    return found


def retrained_since(engine: sa.Engine, before: pd.Timestamp) -> dict[str, pd.Timestamp]:
    """Per series, the evaluation date of the latest retrain triggered for it before ``before``."""
    d = DECISIONS.c
    query = sa.select(d.evaluation_date, d.series).where(d.status == TRIGGERED, d.evaluation_date <= pd.Timestamp(before).to_pydatetime())
    found: dict[str, pd.Timestamp] = {}
    with engine.connect() as connection:
        for when, series in connection.execute(query).all():
            for uid in json.loads(series):
                found[uid] = max(found.get(uid, pd.Timestamp.min), pd.Timestamp(when))
    return found


def triggered_in_week(engine: sa.Engine, week: str) -> dict | None:
    """The decision that triggered a retrain in ``week``, if any."""
    d = DECISIONS.c
    query = sa.select(DECISIONS).where(d.week == week, d.status == TRIGGERED).order_by(d.id).limit(1)
    with engine.connect() as connection:
        row = connection.execute(query).mappings().first()
    return dict(row) if row else None


def record_decision(
    engine: sa.Engine,
    evaluation_date: pd.Timestamp,
    week: str,
    status: str,
    series: Sequence[str],
    n_evaluated: int,
    n_degraded: int,
    cohort_id: str | None = None,
    trigger_run_id: str | None = None,
) -> None:
    with engine.begin() as connection:
        connection.execute(
            DECISIONS.insert(),
            {
                "evaluation_date": pd.Timestamp(evaluation_date).to_pydatetime(),
                "week": week,
                "status": status,
                "cohort_id": cohort_id,
                "trigger_run_id": trigger_run_id,
                "series": json.dumps(sorted(series)),
                "n_evaluated": n_evaluated,
                "n_degraded": n_degraded,
                "decided_at": datetime.now(UTC).replace(tzinfo=None),
            },
        )


def read_table(engine: sa.Engine, name: str) -> pd.DataFrame:
    table = METADATA.tables[name]
    with engine.connect() as connection:
        return pd.read_sql(sa.select(table), connection)
