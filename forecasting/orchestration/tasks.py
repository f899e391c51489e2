"""The functions the Airflow tasks call: JSON-able ids and paths in, JSON-able summaries out.

Each DAG task body is one call into this module, so the DAG files stay wiring only
and every step runs (and is tested) without Airflow. The CLI's run
(``forecasting.orchestration.local.run_weekly``) takes the same steps in the same order:
``prepare_step`` (the snapshot of a dated source included), the shards, ``finalize_run`` (and
registration), ``publish_run``, ``report_run``; only the DAG runs ``retention_task`` after them.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from forecasting.config import ConfigError, Settings, load_settings
from forecasting.data.source import read_file_snapshot, read_query_snapshot
from forecasting.data.validation import check_forecast_breaker
from forecasting.orchestration.failed_shards import failed_shards, fallback_results
from forecasting.orchestration.pipeline import finalize, prepare_run, publish
from forecasting.orchestration.registration import register
from forecasting.orchestration.reporting import record_stage_time, write_report
from forecasting.orchestration.run_catalog import (
    Run,
    RunFolder,
    read_shard_lifecycle,
    snapshot_path,
)
from forecasting.orchestration.shards import read_shard_results, train_global_shard, train_shard
from forecasting.publishing.table import write_atomic
from forecasting.training.selection_step import ShardResult

logger = logging.getLogger(__name__)


def run_settings(config: str | None, as_of: str | None = None) -> Settings:
    """The settings of a run: the config file, the environment, and the run's as-of date."""
    overrides = {"forecast": {"as_of": str(as_of)}} if as_of else {}
    return load_settings(Path(config) if config else None, overrides)


def with_snapshot(settings: Settings) -> Settings:
    """Point ``data.path`` at the as-of date's snapshot when a source template or query is set."""
    source, data = settings.source, settings.data
    if not (source.path_template or source.query):
        return settings
    if not settings.forecast.as_of:
        raise ConfigError("source.path_template / source.query need an as_of date (forecast.as_of, --as-of)")
    as_of = pd.Timestamp(settings.forecast.as_of)
    if source.query:
        frame = read_query_snapshot(source.query, source.url_env, as_of, data.id_col, data.time_col, data.target_col,
                                    data.date_format)
    else:
        frame = read_file_snapshot(source.path_template, as_of, data.id_col, data.time_col, data.target_col,
                                   data.date_format)
    digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()).hexdigest()[:12]
    path = snapshot_path(Path(settings.output.root).resolve(), as_of, digest)
    if not path.exists():
        write_atomic(frame, path)
    updated = settings.model_copy(deep=True)
    updated.data.path = path
    updated.data.id_col, updated.data.time_col, updated.data.target_col = "unique_id", "ds", "y"
    updated.data.date_format = None  # the snapshot holds parsed dates
    return updated


def dated_source(config: str | None) -> bool:
    """Whether the configured input has a snapshot per as-of date (a template or a query)."""
    source = run_settings(config).source
    return bool(source.path_template or source.query)


def prepare(
    config: str | None, as_of: str | None, series: Sequence[str] | None = None, scheduled: str | None = None
) -> dict[str, Any]:
    """Read the snapshot, validate and shard it: ``{run_id, run_dir, shards}``.

    ``as_of`` given wins; otherwise ``scheduled`` (the run's logical date) is the as-of date of
    a dated source, while a fixed file (or the demo panel) forecasts from its own last date.
    """
    if not as_of and scheduled and dated_source(config):
        as_of = scheduled
    return prepare_step(run_settings(config, as_of), series)


def prepare_step(settings: Settings, series: Sequence[str] | None = None) -> dict[str, Any]:
    """The prepare step of every run: the as-of date's snapshot of a dated source (``with_snapshot``),
    then validate and shard it (``prepare_run``): ``{run_id, run_dir, shards}``."""
    started = time.perf_counter()
    prepared = prepare_run(with_snapshot(settings), list(series) if series else None)
    record_stage_time(prepared["run_dir"], "prepare", time.perf_counter() - started)
    return prepared


def shard_size(run_dir: str, shard: int) -> int:
    """The number of series of ``shard`` (which names its task in the Airflow UI: "shard 3 (41 series)")."""
    return len(read_shard_lifecycle(RunFolder(Path(run_dir)), shard))


def train_shard_task(run_dir: str, shard: int) -> dict[str, Any]:
    """Train one shard: its batches on the configured Dask cluster (or the embedded one), or serially."""
    run = Run.load(run_dir)
    settings = run.settings
    if settings.compute.executor == "serial":
        return train_shard(run, shard)
    from forecasting.orchestration.executors import dask_client, run_batches_dask

    with dask_client(settings) as client:
        # the shard's global candidates first, as one task on the cluster (not in the Airflow worker)
        client.submit(train_global_shard, run_dir, shard, pure=False).result()
        return train_shard(run, shard, run_batches=lambda tasks: run_batches_dask(client, tasks))


def finalize_run(run_dir: str, operator: dict[str, Any] | None = None) -> dict[str, Any]:
    """Combine the shards (the series of shards that failed after their retries fall back), check
    the circuit breaker, then register the run's bundle version (``operator``: a person's champion
    choice, see ``register``)."""
    started = time.perf_counter()
    run = Run.load(run_dir)
    folder, settings = run.folder, run.settings
    failed = failed_shards(run, run.manifest.shards)
    healthy = [s for s in run.manifest.shards if s not in failed]
    parts = [read_shard_results(folder, healthy)] if healthy else []
    parts += [fallback_results(run, shard) for shard in failed]
    summary = finalize(run, ShardResult.concat(parts))
    if failed:
        ledger = pd.read_parquet(folder.output("ledger"), columns=["unique_id", "reason"])
        summary["failed_shards"] = failed
        summary["failed_shard_series"] = sorted(ledger.loc[ledger["reason"] == "shard_failed", "unique_id"])
        folder.write_json(folder.summary, summary)
    # The breaker counts every series without a publishable forecast, before anything is registered or published.
    check_forecast_breaker(pd.read_parquet(folder.output("ledger"), columns=["unique_id", "status", "reason"]),
                           settings.validation.max_quarantine_share)
    registration = register(run, operator)  # {} with the registry disabled; adds "mlflow" to summary.json
    if registration:
        summary["mlflow"] = {k: registration[k] for k in ("tracking_uri", "model_name", "version", "alias")}
    record_stage_time(run_dir, "finalize", time.perf_counter() - started)
    return summary


def publish_run(run_dir: str) -> dict[str, Any]:
    """Publish the run's forecasts: the Parquet table of its origin and the SQL table."""
    started = time.perf_counter()
    run = Run.load(run_dir)
    published = publish(run)
    record_stage_time(run_dir, "publish", time.perf_counter() - started)
    return {**published, "run_id": run.run_id, "as_of": run.manifest.as_of.isoformat()}


def _champion_run(folder: RunFolder, settings: Settings, registration: dict[str, Any] | None) -> Path | None:
    """The run folder of the champion this run was compared with, while retention keeps it."""
    version = (registration or {}).get("decision", {}).get("compared_with_version")
    if not version:
        return None
    from forecasting.registry.versions import pipeline_run_id

    run_id = pipeline_run_id(settings, version)
    champion = RunFolder.under(folder.output_root, run_id)
    return champion.path if run_id and champion.output("ledger").exists() else None


def report_run(run_dir: str) -> dict[str, Any]:
    """The run's HTML report and Prometheus metrics, attached to its MLflow run when it has one.

    "The previous run" it compares with is the champion's run when the registry knows one,
    otherwise the newest earlier run under the output root.

    Comes after publishing, so a failing report is logged and returned as ``report_error``,
    never raised: the forecasts are already out.
    """
    run = Run.load(run_dir)
    folder, settings = run.folder, run.settings
    registration = folder.read_json(folder.registration) if folder.registration.exists() else None
    if not settings.reporting.enabled:
        _finish_tracking(folder, settings, registration)
        return {}
    try:
        reported = write_report(run, previous_run_dir=_champion_run(folder, settings, registration))
        if registration:
            from forecasting.registry.tracking import attach_files

            attach_files(settings, registration["mlflow_run_id"],
                         [Path(reported["report"]), Path(reported["metrics"])], "report")
    except Exception as exc:
        logger.exception("run %s: the report failed", folder.run_id)
        return {"report_error": f"{type(exc).__name__}: {exc}"}
    _finish_tracking(folder, settings, registration)
    return {k: v for k, v in reported.items() if k != "report_figures"}


def _finish_tracking(folder: RunFolder, settings: Settings, registration: dict[str, Any] | None) -> None:
    """End the run's MLflow run now, with the stage times (not for a rerun that reused a version)."""
    if not registration or registration.get("reused"):
        return
    from forecasting.registry.tracking import finish_run

    path = folder.timings
    try:
        finish_run(settings, registration["mlflow_run_id"], folder.read_json(path) if path.exists() else {})
    except Exception:  # the forecasts are out; a tracking hiccup is logged, not raised
        logger.exception("run %s: closing its MLflow run failed", folder.run_id)
