"""The retraining decision: live accuracy of the published forecasts, hysteresis, one cohort a week."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from forecasting.config import Settings
from forecasting.data.database import database_engine
from forecasting.monitoring import store
from forecasting.monitoring.live import backtest_losses, judge, live_scores
from forecasting.orchestration.pipeline import load_input
from forecasting.orchestration.reporting import write_text_atomic
from forecasting.orchestration.tasks import run_settings, with_snapshot
from forecasting.reporting import prometheus


def _latest_forecasts(engine: sa.Engine, table_name: str, before: pd.Timestamp) -> pd.DataFrame:
    """Each series' newest published forecast with an origin before ``before``."""
    table = sa.Table(table_name, sa.MetaData(), autoload_with=engine)
    # the database picks the newest origin per series: older origins never leave it
    newest = (
        sa.select(table.c.unique_id, sa.func.max(table.c.forecast_origin).label("origin"))
        .where(table.c.forecast_origin < before.to_pydatetime())
        .group_by(table.c.unique_id)
        .subquery()
    )
    joined = table.join(
        newest, sa.and_(table.c.unique_id == newest.c.unique_id, table.c.forecast_origin == newest.c.origin)
    )
    with engine.connect() as connection:
        frame = pd.read_sql(sa.select(table).select_from(joined), connection)
    for column in ("forecast_origin", "ds"):
        frame[column] = pd.to_datetime(frame[column])
    return frame


def _backtest_reference(root: Path, live: pd.DataFrame, history: pd.DataFrame, quantiles: list[float]) -> pd.Series:
    parts = []
    for run_id, part in live.groupby("run_id"):
        path = root / "runs" / str(run_id) / "backtest.parquet"
        models = part.set_index("unique_id")["model"]
        horizons = part.set_index("unique_id")["n_weeks"]
        if path.exists():
            backtest = pd.read_parquet(path, filters=[("unique_id", "in", list(models.index))])
            parts.append(backtest_losses(backtest, history, models, horizons, quantiles))
        else:  # the run folder is gone (retention): the series cannot be judged
            parts.append(pd.Series(float("nan"), index=models.index))
    return pd.concat(parts) if parts else pd.Series(dtype=float)


def iso_week(day: pd.Timestamp) -> str:
    year, week, _ = pd.Timestamp(day).isocalendar()
    return f"{year}-W{week:02d}"


def evaluate_retraining(config: str | None, as_of: str | None) -> dict[str, Any]:
    """Judge every published series against its arrived actuals; decide this week's retrain cohort.

    Returns ``trigger`` (bool), the deterministic ``trigger_run_id`` and the ``conf`` for
    weekly_forecast (as_of, series, config). A week triggers at most once.
    """
    settings = with_snapshot(run_settings(config, as_of))
    history, _ = load_input(settings)
    history = history.assign(ds=pd.to_datetime(history["ds"]), unique_id=history["unique_id"].astype(str))
    if as_of:
        history = history[history["ds"] <= pd.Timestamp(as_of)]
    if history.empty:
        raise ValueError(f"retraining check as of {as_of}: the input has no history to judge forecasts against")
    evaluation_date = pd.Timestamp(history["ds"].max())
    engine = database_engine(settings)
    store.ensure_tables(engine)
    week = iso_week(evaluation_date)
    result: dict[str, Any] = {"evaluation_date": f"{evaluation_date:%Y-%m-%d}", "week": week, "trigger": False}

    if not sa.inspect(engine).has_table(settings.database.forecast_table):
        forecasts = pd.DataFrame()
    else:
        forecasts = _latest_forecasts(engine, settings.database.forecast_table, evaluation_date)
    quantiles = settings.forecast.quantiles
    live = live_scores(forecasts, history, quantiles) if not forecasts.empty else pd.DataFrame()
    if live.empty:
        store.record_decision(engine, evaluation_date, week, "no_actuals", [], 0, 0)
        metrics = export_metrics(settings, {"live_series_evaluated": 0, "retrain_triggered_series": 0})
        return {**result, "status": "no_actuals", "n_evaluated": 0, "n_degraded": 0, "metrics": metrics}
    live["backtest_loss"] = live["unique_id"].map(
        _backtest_reference(Path(settings.output.root).resolve(), live, history, quantiles)
    )
    monitoring = settings.monitoring
    judged = judge(
        live, store.previous_consecutive(engine, evaluation_date), monitoring.tolerance, monitoring.min_scale_loss,
        monitoring.min_weeks,
    )
    store.record_evaluation(engine, evaluation_date, judged)
    cohort = sorted(judged.loc[judged["consecutive"] >= monitoring.consecutive, "unique_id"])
    counts = {"n_evaluated": int(len(judged)), "n_degraded": int(judged["degraded"].sum())}
    cohort_id = f"{week}-{hashlib.sha256(','.join(cohort).encode()).hexdigest()[:8]}"
    trigger_run_id = f"retrain__{week}"
    earlier = store.triggered_in_week(engine, week)
    if not cohort:
        status = "none"
    elif earlier is not None:
        status = "already_triggered"
    elif len(cohort) > monitoring.max_series_share * len(judged):
        status = "alert_too_many"  # a data or pipeline problem, not model decay: an operator looks first
    else:
        status = store.TRIGGERED
    store.record_decision(
        engine, evaluation_date, week, status, cohort, **counts, cohort_id=cohort_id if cohort else None,
        trigger_run_id=trigger_run_id if status == store.TRIGGERED else None,
    )
    result.update(status=status, cohort=cohort, cohort_id=cohort_id if cohort else None, **counts)
    result["metrics"] = export_metrics(settings, {
        "drift_flagged_series": len(cohort),
        "retrain_triggered_series": len(cohort) if status == store.TRIGGERED else 0,
        "live_scaled_quantile_loss_mean": float(judged["live_loss"].mean()),
        "live_coverage": float(judged["coverage"].mean()),
        "live_series_evaluated": len(judged),
    })
    if status == store.TRIGGERED:
        result.update(
            trigger=True,
            trigger_run_id=trigger_run_id,
            conf={"as_of": f"{evaluation_date:%Y-%m-%d}", "series": cohort, "config": config, "reason": cohort_id},
        )
    return result


def export_metrics(settings: Settings, figures: dict[str, float]) -> str:
    """The check's figures in the Prometheus text format: ``<output root>/monitoring/metrics.prom``,
    and ``<reporting.textfile_dir>/forecasting_monitoring.prom`` when that is set."""
    text = prometheus.render(prometheus.monitoring_metrics({**figures, "check_timestamp_seconds": time.time()}))
    path = Path(settings.output.root).resolve() / "monitoring" / "metrics.prom"
    write_text_atomic(path, text)
    if settings.reporting.textfile_dir is not None:
        write_text_atomic(Path(settings.reporting.textfile_dir) / "forecasting_monitoring.prom", text)
    return str(path)
