"""The register step (between finalize and publish): MLflow run, bundle version, champion decision.

Self-contained and idempotent: it reads only the run folder, writes
``registration.json`` there, and a rerun of the same run id returns the same version
and alias (found again in the registry by the run id tag).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from forecasting.orchestration.run_folder import RunFolder, load_run

REGISTRATION = "registration.json"


def registration_path(folder: RunFolder) -> Path:
    return folder.path / REGISTRATION


def run_history(folder: RunFolder, shards: list[int]) -> pd.DataFrame:
    """The validated history the run trained on (every shard's input)."""
    frames = [pd.read_parquet(folder.shard_dir(s) / "input.parquet", columns=["unique_id", "ds", "y"]) for s in shards]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame({"unique_id": pd.Series(dtype=str), "ds": pd.Series(dtype="datetime64[ns]"),
                             "y": pd.Series(dtype=float)})
    return pd.concat(frames, ignore_index=True).sort_values(["unique_id", "ds"]).reset_index(drop=True)


def register(run_dir: str | Path) -> dict[str, Any]:
    """Register a finalized run; returns the ``mlflow`` summary object (JSON-able), or {} when disabled."""
    folder, manifest, settings = load_run(run_dir)
    if not settings.registry.enabled:
        return {}
    from forecasting.registry.registration import RunRecord, register_run

    record = RunRecord(
        manifest=manifest,
        settings=settings,
        ledger=pd.read_parquet(folder.output("ledger")),
        leaderboard=pd.read_parquet(folder.output("leaderboard")),
        scores=pd.read_parquet(folder.output("scores")),
        history=run_history(folder, manifest["shards"]),
        artifacts=[folder.manifest, folder.summary, folder.output("ledger"), folder.output("leaderboard")],
    )
    result = register_run(record)
    folder.write_json(registration_path(folder), result)
    if folder.summary.exists():
        summary = folder.read_json(folder.summary)
        summary["mlflow"] = {k: result[k] for k in ("tracking_uri", "model_name", "version", "alias")}
        folder.write_json(folder.summary, summary)
    return result


def versioned_table(run_dir: str | Path, table: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The rows to publish: the run's own, stamped with its version when it became champion;
    the champion bundle's forecasts from this run's fresh history when it is only challenger."""
    folder, manifest, settings = load_run(run_dir)
    path = registration_path(folder)
    if not path.exists() or table.empty:
        return table, {}
    registration = folder.read_json(path)
    champion = registration["decision"].get("compared_with_version", "")
    if registration["alias"] != "challenger" or not champion:
        return table.assign(model_version=registration["version"]), {"forecasts_from_version": registration["version"]}
    from forecasting.publishing.table import build_forecast_table
    from forecasting.registry.registration import bundle_forecasts

    history = run_history(folder, manifest["shards"])
    history = history[history["unique_id"].isin(set(table["unique_id"]))]
    rows = bundle_forecasts(settings, champion, history, settings.forecast.horizon)
    run_status = table.drop_duplicates("unique_id").set_index("unique_id")["status"]
    rows["status"] = rows["status"].where(rows["unique_id"].map(run_status) != "new", "new")
    published = build_forecast_table(rows, pd.Timestamp(manifest["as_of"]), folder.run_id,
                                     settings.forecast.quantiles, model_version=champion)
    return published, {"forecasts_from_version": champion}
