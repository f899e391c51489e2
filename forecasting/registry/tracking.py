"""One MLflow run per pipeline run: parameters, aggregate metrics and artifacts.

The run is named after the pipeline's run id, starts when the pipeline's prepare step started
and ends when its report is written (so its duration is the pipeline's, not the logging
call's), and carries short readable parameters and tags: long data (the manifest, the
ledger, the leaderboard) is in its artifacts. Its experiment is marked as a model-training
experiment, so the MLflow UI lists the runs as training runs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from forecasting.config import Settings

RUN_ID_TAG = "forecasting.run_id"


class RunManifest(Protocol):
    """What the registry reads of a run's manifest (orchestration's ``Manifest`` is one)."""

    @property
    def run_id(self) -> str: ...
    @property
    def as_of(self) -> pd.Timestamp: ...
    @property
    def source(self) -> str: ...
    @property
    def started_at(self) -> float | None: ...  # epoch seconds
    @property
    def series_subset(self) -> list[str] | None: ...
    @property
    def data_fingerprint(self) -> str: ...
    @property
    def n_input_series(self) -> int | None: ...
    @property
    def versions(self) -> dict[str, str]: ...
    @property
    def plugins(self) -> dict[str, str]: ...  # plug-in name -> its distribution and version

EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"


def run_params(manifest: RunManifest, settings: Settings) -> dict[str, str]:
    """Parameters of the run: configuration, candidate set, data fingerprint, code and plug-in versions."""
    versions = manifest.versions
    params = {
        "run_id": manifest.run_id,
        "as_of": manifest.as_of.isoformat(),
        "data_fingerprint": manifest.data_fingerprint,
        "source": manifest.source,
        "series_subset": ",".join(manifest.series_subset or []) or "all",
        "candidates": ",".join(c.label for c in settings.models.candidates),
        "fallback": ",".join(settings.models.fallback),
        "freq": settings.forecast.freq,
        "horizon": settings.forecast.horizon,
        "season_length": settings.season_length,
        "quantiles": ",".join(str(q) for q in settings.forecast.quantiles),
        "backtest_windows": settings.backtest.n_windows,
        "backtest_step": settings.backtest_step,
        "ensemble": settings.ensemble.enabled,
        "selection_margin": settings.selection.margin,
        "switching_margin": settings.registry.switching_margin,
        "champion_margin": settings.registry.champion_margin,
        "code_version": versions.get("forecasting", ""),
        **{f"version.{name}": version for name, version in sorted(versions.items())},
        **{f"plugin.{name}": dist for name, dist in sorted(manifest.plugins.items())},
    }
    # MLflow caps a parameter value at 6,000 characters: a long series subset is in the manifest artifact
    return {k: str(v)[:6000] for k, v in params.items()}


def run_metrics(ledger: pd.DataFrame, leaderboard: pd.DataFrame) -> dict[str, float]:
    """Mean scaled quantile loss (winners, each candidate), win shares, coverage, counts by status."""
    metrics: dict[str, float] = {"n_series": float(len(ledger))}
    for status, count in ledger["status"].value_counts().items():
        metrics[f"count_{status}"] = float(count)
    if leaderboard.empty:
        return metrics
    winners = leaderboard[leaderboard["is_winner"]]
    metrics["sql_mean"] = float(winners["scaled_quantile_loss"].mean())
    metrics["coverage_mean"] = float(winners["coverage"].mean())
    metrics["mase_mean"] = float(winners["mase"].mean())
    for candidate, loss in leaderboard.groupby("candidate")["scaled_quantile_loss"].mean().items():
        metrics[f"sql_mean.{candidate}"] = float(loss)
    share = winners["candidate"].value_counts(normalize=True)
    for candidate in leaderboard["candidate"].unique():
        metrics[f"win_share.{candidate}"] = float(share.get(candidate, 0.0))
    return metrics


def run_tags(manifest: RunManifest) -> dict[str, str]:
    """Short tags to find and read a run by in the MLflow UI (the long data is in the artifacts)."""
    source = manifest.source
    tags = {
        RUN_ID_TAG: manifest.run_id,
        "forecasting.as_of": manifest.as_of.strftime("%Y-%m-%d"),
        "forecasting.input": Path(source).name if "/" in source else source,
        "forecasting.series": "" if manifest.n_input_series is None else str(manifest.n_input_series),
        "forecasting.subset": "yes" if manifest.series_subset else "no",
    }
    return {k: v[:250] for k, v in tags.items()}


def pipeline_start_ms(manifest: RunManifest) -> int | None:
    """When the pipeline's prepare step started (epoch milliseconds), if the manifest says."""
    started = manifest.started_at
    return int(float(started) * 1000) if started else None


def _mark_training_experiment(client: Any, experiment_id: str) -> None:
    """Tag the experiment as model training (once: concurrent first inserts of a tag can collide)."""
    from mlflow.exceptions import MlflowException

    try:
        if client.get_experiment(experiment_id).tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
            client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    except MlflowException:  # another registration set it at the same moment, to the same value
        pass


def log_run(
    client: Any,
    experiment_id: str,
    run_id: str,
    params: Mapping[str, str],
    metrics: Mapping[str, float],
    artifacts: Sequence[Path],
    manifest: RunManifest | None = None,
) -> str:
    """Create the MLflow run of a pipeline run and log everything; returns its id.

    ``manifest``: the run's manifest, for the start time and the readable tags.
    """
    from mlflow.entities import Metric, Param, RunTag

    _mark_training_experiment(client, experiment_id)
    tags = run_tags(manifest) if manifest else {RUN_ID_TAG: run_id}
    start = pipeline_start_ms(manifest) if manifest else None
    run = client.create_run(experiment_id, start_time=start, run_name=run_id, tags=tags)
    mlflow_run_id = run.info.run_id
    client.log_batch(
        mlflow_run_id,
        metrics=[Metric(k, float(v), 0, 0) for k, v in metrics.items() if pd.notna(v)],
        params=[Param(k, v) for k, v in params.items()],
        tags=[RunTag("mlflow.runName", run_id)],
    )
    for path in artifacts:
        if Path(path).exists():
            client.log_artifact(mlflow_run_id, str(path), "run")
    return mlflow_run_id


def attach_files(settings: Settings, mlflow_run_id: str, paths: Sequence[Path], artifact_path: str) -> None:
    """Add files made after registration (the run report) to a pipeline run's MLflow run."""
    from mlflow import MlflowClient

    from forecasting.registry.store import use_store

    uri = use_store(settings)
    client = MlflowClient(uri, uri)
    for path in paths:
        client.log_artifact(mlflow_run_id, str(path), artifact_path)


def finish_run(settings: Settings, mlflow_run_id: str, stage_seconds: Mapping[str, float]) -> None:
    """Close a pipeline's MLflow run when its last step is done: the stage times as metrics
    (``stage_seconds.<stage>``) and the end time now, so the run's duration is the pipeline's."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    from forecasting.registry.store import use_store

    uri = use_store(settings)
    client = MlflowClient(uri, uri)
    now = int(time.time() * 1000)
    metrics = [Metric(f"stage_seconds.{stage}", float(seconds), now, 0) for stage, seconds in stage_seconds.items()]
    if metrics:
        client.log_batch(mlflow_run_id, metrics=metrics)
    client.set_terminated(mlflow_run_id, end_time=now)
