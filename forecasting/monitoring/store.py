"""Monitoring tables beside the forecast table: every evaluation and every decision, readable by operators."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

import pandas as pd
import sqlalchemy as sa

METADATA = sa.MetaData()

EVALUATIONS = sa.Table(
    "monitoring_evaluations",
    METADATA,
    sa.Column("evaluation_date", sa.DateTime, nullable=False),
    sa.Column("unique_id", sa.String(255), nullable=False),
    sa.Column("forecast_origin", sa.DateTime, nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("model", sa.String(255), nullable=False),
    sa.Column("n_weeks", sa.Integer, nullable=False),
    sa.Column("live_loss", sa.Float, nullable=False),
    sa.Column("coverage", sa.Float, nullable=False),
    sa.Column("backtest_loss", sa.Float),
    sa.Column("ratio", sa.Float),
    sa.Column("degraded", sa.Boolean, nullable=False),
    sa.Column("consecutive", sa.Integer, nullable=False),
    sa.Column("reason", sa.String(255), nullable=False),
    sa.Column("evaluated_at", sa.DateTime, nullable=False),
    sa.UniqueConstraint("evaluation_date", "unique_id", name="uq_monitoring_evaluations_key"),
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
    METADATA.create_all(engine, checkfirst=True)


def previous_consecutive(engine: sa.Engine, evaluation_date: pd.Timestamp) -> pd.Series:
    """Each series' ``consecutive`` count at its last evaluation before ``evaluation_date``."""
    e = EVALUATIONS.c
    latest = (
        sa.select(e.unique_id, sa.func.max(e.evaluation_date).label("last"))
        .where(e.evaluation_date < pd.Timestamp(evaluation_date).to_pydatetime())
        .group_by(e.unique_id)
        .subquery()
    )
    query = sa.select(e.unique_id, e.consecutive).join(
        latest, sa.and_(e.unique_id == latest.c.unique_id, e.evaluation_date == latest.c.last)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return pd.Series({uid: int(count) for uid, count in rows}, dtype="int64")


def record_evaluation(engine: sa.Engine, evaluation_date: pd.Timestamp, judged: pd.DataFrame) -> None:
    """Replace the rows of this evaluation date (a re-evaluation of the same data is idempotent)."""
    when = pd.Timestamp(evaluation_date).to_pydatetime()
    columns = [c.name for c in EVALUATIONS.columns if c.name not in ("evaluation_date", "evaluated_at")]
    frame = judged[columns].astype(object).where(judged[columns].notna(), None)
    now = datetime.now(UTC).replace(tzinfo=None)
    records = [{**r, "evaluation_date": when, "evaluated_at": now} for r in frame.to_dict("records")]
    for record in records:
        record["degraded"] = bool(record["degraded"])
        record["forecast_origin"] = pd.Timestamp(record["forecast_origin"]).to_pydatetime()
    with engine.begin() as connection:
        connection.execute(EVALUATIONS.delete().where(EVALUATIONS.c.evaluation_date == when))
        if records:
            connection.execute(EVALUATIONS.insert(), records)


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
    table = EVALUATIONS if name == EVALUATIONS.name else DECISIONS
    with engine.connect() as connection:
        return pd.read_sql(sa.select(table), connection)
