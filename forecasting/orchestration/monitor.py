"""The retraining decision: every published forecast step whose actual arrived, a CUSUM per series, one cohort a week.

Points from all origins and horizons in the last ``monitoring.lookback_weeks`` target weeks
are judged against the reference of the run that published them (its backtest, kept in the
monitoring tables so that it outlives the run folder); a series' CUSUM counts the forecasts
published since its last triggered retrain. See ``forecasting.monitoring``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from forecasting.config import Settings
from forecasting.data.contract import ID
from forecasting.data.database import database_engine
from forecasting.monitoring import store
from forecasting.monitoring.cusum import CusumRule
from forecasting.monitoring.judge import judge, since_retrain
from forecasting.monitoring.live import live_points, with_reference
from forecasting.monitoring.reference import RunReference, run_reference
from forecasting.orchestration.run_catalog import Run, RunFolder, run_history, write_text_atomic
from forecasting.orchestration.run_input import load_input, run_settings, with_snapshot
from forecasting.reporting import prometheus


def _published(engine: sa.Engine, table_name: str, evaluation_date: pd.Timestamp, lookback_weeks: int) -> pd.DataFrame:
    """Every published row whose target week lies in the lookback window and has passed."""
    table = sa.Table(table_name, sa.MetaData(), autoload_with=engine)
    start = evaluation_date - pd.Timedelta(weeks=lookback_weeks)
    query = sa.select(table).where(table.c.ds <= evaluation_date.to_pydatetime(), table.c.ds > start.to_pydatetime())
    with engine.connect() as connection:
        frame = pd.read_sql(query, connection)
    for column in ("forecast_origin", "ds"):
        frame[column] = pd.to_datetime(frame[column])
    frame[ID] = frame[ID].astype(str)
    return frame[frame["forecast_origin"] < frame["ds"]]


def run_folder_reference(run_dir: str | Path) -> RunReference | None:
    """A run's reference, from its backtest and the models it published (None without a backtest)."""
    run = Run.load(run_dir)
    folder, settings = run.folder, run.settings
    if not folder.output("backtest").exists():
        return None
    ledger = pd.read_parquet(folder.output("ledger"), columns=[ID, "model"])
    models = ledger[ledger["model"].fillna("") != ""].set_index(ID)["model"]
    backtest = pd.read_parquet(folder.output("backtest"))
    return run_reference(folder.run_id, backtest, models, run_history(folder, run.manifest.shards),
                         settings.forecast.quantiles)


def keep_references(engine: sa.Engine, run_dirs: Iterable[str | Path]) -> list[str]:
    """Store the references of these run folders that are not stored yet; returns their run ids."""
    store.ensure_tables(engine)
    stored = store.stored_runs(engine)
    kept = []
    for run_dir in run_dirs:
        if Path(run_dir).name in stored or not RunFolder(Path(run_dir)).manifest.exists():
            continue
        reference = run_folder_reference(run_dir)
        if reference is not None:
            store.save_reference(engine, reference)
            kept.append(reference.run_id)
    return kept


def keep_references_before_retention(settings: Settings, run_dirs: list[Path]) -> list[str]:
    """What retention calls before deleting run folders: their references stay in the database."""
    if not settings.database.enabled:
        return []
    return keep_references(database_engine(settings), run_dirs)


def iso_week(day: pd.Timestamp) -> str:
    year, week, _ = pd.Timestamp(day).isocalendar()
    return f"{year}-W{week:02d}"


def rule(settings: Settings) -> CusumRule:
    monitoring = settings.monitoring
    return CusumRule(monitoring.cusum_drift, monitoring.cusum_threshold)


def evaluate_retraining(config: str | None, as_of: str | None) -> dict[str, Any]:
    """Judge every published series against its arrived actuals; decide this week's retrain cohort.

    Returns ``trigger`` (bool), the deterministic ``trigger_run_id`` and the ``conf`` for
    weekly_forecast (as_of, series, config). A week triggers at most once.
    """
    settings = with_snapshot(run_settings(config, as_of))
    history, _ = load_input(settings)
    history = history.assign(ds=pd.to_datetime(history["ds"]), unique_id=history[ID].astype(str))
    if as_of:
        history = history[history["ds"] <= pd.Timestamp(as_of)]
    if history.empty:
        raise ValueError(f"retraining check as of {as_of}: the input has no history to judge forecasts against")
    evaluation_date = pd.Timestamp(history["ds"].max())
    engine = database_engine(settings)
    store.ensure_tables(engine)
    week = iso_week(evaluation_date)
    result: dict[str, Any] = {"evaluation_date": f"{evaluation_date:%Y-%m-%d}", "week": week, "trigger": False}
    monitoring = settings.monitoring
    forecasts = pd.DataFrame()
    if sa.inspect(engine).has_table(settings.database.forecast_table):
        forecasts = _published(engine, settings.database.forecast_table, evaluation_date, monitoring.lookback_weeks)
    points = live_points(forecasts, history, settings.forecast.quantiles) if not forecasts.empty else pd.DataFrame()
    if points.empty:
        store.record_decision(engine, evaluation_date, week, "no_actuals", [], 0, 0)
        metrics = export_metrics(settings, {"live_series_evaluated": 0, "retrain_triggered_series": 0})
        return {**result, "status": "no_actuals", "n_evaluated": 0, "n_degraded": 0, "metrics": metrics}
    runs = sorted(points["run_id"].astype(str).unique())
    keep_references(engine, [RunFolder.under(Path(settings.output.root).resolve(), run_id).path for run_id in runs])
    points = with_reference(points, store.load_references(engine, runs), monitoring.min_scale_loss, monitoring.materiality)
    retrained = store.retrained_since(engine, evaluation_date - pd.Timedelta(days=1))
    judged = judge(since_retrain(points, retrained), rule(settings))
    store.record_evaluation(engine, evaluation_date, judged)
    cohort = sorted(judged.loc[judged["degraded"], ID])
    counts = {"n_evaluated": int(len(judged)), "n_degraded": len(cohort)}
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
