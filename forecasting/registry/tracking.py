"""One MLflow run per pipeline run: parameters, aggregate metrics and artifacts."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from forecasting.config import Settings

RUN_ID_TAG = "forecasting.run_id"


def run_params(manifest: Mapping[str, Any], settings: Settings) -> dict[str, str]:
    """Parameters of the run: configuration, candidate set, data fingerprint, code and plug-in versions."""
    versions = manifest.get("versions", {})
    params = {
        "run_id": manifest["run_id"],
        "as_of": manifest["as_of"],
        "data_fingerprint": manifest.get("data_fingerprint", ""),
        "source": manifest.get("source", ""),
        "series_subset": ",".join(manifest.get("series_subset") or []) or "all",
        "candidates": ",".join(c.label for c in settings.models.candidates),
        "fallback": ",".join(settings.models.fallback),
        "freq": settings.forecast.freq,
        "horizon": settings.forecast.horizon,
        "season_length": settings.season_length,
        "quantiles": ",".join(str(q) for q in settings.forecast.quantiles),
        "backtest_windows": settings.backtest.n_windows,
        "backtest_step": settings.backtest_step,
        "ensemble_top_k": settings.selection.ensemble_top_k,
        "switching_margin": settings.registry.switching_margin,
        "champion_margin": settings.registry.champion_margin,
        "code_version": versions.get("forecasting", ""),
        "package_versions": json.dumps(versions, sort_keys=True),
        "plugin_versions": json.dumps(manifest.get("plugins", {}), sort_keys=True),
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


def log_run(
    client: Any,
    experiment_id: str,
    run_id: str,
    params: Mapping[str, str],
    metrics: Mapping[str, float],
    artifacts: Sequence[Path],
) -> str:
    """Create the MLflow run of a pipeline run and log everything; returns its id."""
    from mlflow.entities import Metric, Param, RunTag

    run = client.create_run(experiment_id, run_name=run_id, tags={RUN_ID_TAG: run_id})
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
