"""The register step (the end of the finalize task, before publish): switching margin, MLflow run, bundle
version, champion decision.

Self-contained and idempotent: it reads only the run folder, writes ``registration.json``
and the decision's per-series evidence (``decision.parquet``) there, and a rerun of the same
run id returns the same version and alias (found again in the registry by the run id tag).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from forecasting.config import Settings
from forecasting.data.contract import ID
from forecasting.orchestration.run_catalog import Run, RunFolder, run_history
from forecasting.publishing.table import build_forecast_table, write_atomic

DECISION = "decision"
SWITCHING, SWITCHING_FORECASTS = "switching", "switching_forecasts"


def training_groups(folder: RunFolder) -> dict[str, str]:
    """Series -> the panel its global models were fitted on (run and shard)."""
    from forecasting.registry.bundle import training_group

    lifecycle = pd.read_parquet(folder.input("lifecycle"), columns=[ID, "shard"])
    return {str(u): training_group(folder.run_id, int(s)) for u, s in zip(lifecycle[ID], lifecycle["shard"], strict=True)}


def calibration_pools(folder: RunFolder) -> tuple[dict[str, str], dict[str, str]]:
    """Series -> its calibration pool, and pool -> the calibrators training learned there (JSON text)."""
    from forecasting.registry.bundle import training_group
    from forecasting.registry.calibrated_members import pool_calibrations, series_pools
    from forecasting.training.batch import demand_type

    lifecycle = pd.read_parquet(folder.input("lifecycle"), columns=[ID, "demand_class"])
    demands = {str(u): demand_type(str(d)) for u, d in zip(lifecycle[ID], lifecycle["demand_class"], strict=True)}
    path = folder.output("pools")
    pools = pd.read_parquet(path) if path.exists() else pd.DataFrame()
    calibration = pool_calibrations(pools, lambda shard: training_group(folder.run_id, shard))
    return series_pools(training_groups(folder), demands), calibration


def global_params(folder: RunFolder, shards: list[int]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per training group and global candidate, the parameters it was fitted with (tuned ones included)."""
    from forecasting.registry.bundle import training_group

    found = {}
    for shard in shards:
        marker = folder.global_done(shard)
        if marker.exists():
            models = folder.read_json(marker).get("models", {})
            found[training_group(folder.run_id, shard)] = {label: dict(info.get("params", {})) for label, info in models.items()}
    return found


def switching_version(folder: RunFolder, settings: Settings, run_id: str) -> str:
    """The champion whose models the switching margin keeps: chosen once per run folder, so a rerun
    keeps what its first attempt saw ("" when there is none, or no margin)."""
    path = folder.switching_version
    if path.exists():
        return str(folder.read_json(path)["version"])
    version = ""
    if settings.registry.enabled and settings.registry.switching_margin > 0:
        from forecasting.registry.registration import champion_version

        version = champion_version(settings, run_id)
    folder.write_json(path, {"version": version})
    return version


def _switching(run: Run, history: pd.DataFrame) -> None:
    """Decide the switching margin once (persisted), then apply it to the ledger and forecasts (idempotent)."""
    folder, settings = run.folder, run.settings
    version = run.manifest.switching_version
    if not version or settings.registry.switching_margin <= 0:
        return
    decisions_path, forecasts_path = folder.output(SWITCHING), folder.output(SWITCHING_FORECASTS)
    ledger = pd.read_parquet(folder.output("ledger"))
    if not decisions_path.exists():
        import tempfile

        from forecasting.registry.registration import load_bundle
        from forecasting.registry.switching import decide_switching

        with tempfile.TemporaryDirectory(prefix="forecasting-switching-") as tmp:
            champion = load_bundle(settings, version, Path(tmp))
            decisions, rows = decide_switching(
                ledger, pd.read_parquet(folder.output("scores")), history, champion,
                settings.registry.switching_margin, list(settings.forecast.quantiles), settings.forecast.horizon,
            )
        table = build_forecast_table(rows, run.manifest.as_of, folder.run_id, settings.forecast.quantiles) \
            if len(rows) else pd.DataFrame()
        write_atomic(table, forecasts_path)
        write_atomic(decisions, decisions_path)
    _apply_switching(folder, ledger, pd.read_parquet(decisions_path), pd.read_parquet(forecasts_path))


def _apply_switching(folder: RunFolder, ledger: pd.DataFrame, decisions: pd.DataFrame, rows: pd.DataFrame) -> None:
    if decisions.empty:
        return
    from forecasting.registry.switching import KEPT

    ledger = ledger.set_index(ID)
    decided = decisions.set_index(ID)
    ledger.loc[decided.index, "selection"] = decided["selection"]
    kept = decided[decided["selection"] == KEPT]
    ledger.loc[kept.index, "model"] = kept["previous_model"]
    ledger.loc[kept.index, "winner"] = kept["previous_model"]
    ledger.loc[kept.index, "ensemble_members"] = kept["previous_members"].fillna("")
    write_atomic(ledger.reset_index(), folder.output("ledger"))
    if len(rows):
        forecasts = pd.read_parquet(folder.output("forecasts"))
        forecasts = forecasts[~forecasts[ID].isin(set(rows[ID]))]
        combined = pd.concat([forecasts, rows[forecasts.columns]], ignore_index=True)
        write_atomic(combined.sort_values([ID, "ds"]).reset_index(drop=True), folder.output("forecasts"))


def _operator_choice(operator: dict[str, Any] | None) -> Any:
    from forecasting.registry.registration import OperatorChoice

    operator = operator or {}
    action = str(operator.get("champion") or "decide")
    alias = {"promote": "champion", "keep": "challenger"}.get(action, "")
    return OperatorChoice(alias, bool(operator.get("pin")), str(operator.get("by") or ""), str(operator.get("reason") or ""))


def register(run: Run | str | Path, operator: dict[str, Any] | None = None) -> dict[str, Any]:
    """Register a finalized run; returns the ``mlflow`` summary object (JSON-able), or {} when disabled.

    ``operator``: a person's choice for this version, ``{champion: decide|promote|keep, pin, by, reason}``.
    """
    run = Run.of(run)
    folder, manifest, settings = run.folder, run.manifest, run.settings
    if not settings.registry.enabled:
        return {}
    from forecasting.registry.registration import RunRecord, register_run

    history = run_history(folder, manifest.shards)
    _switching(run, history)
    kept = {}
    if folder.output(SWITCHING).exists():
        decisions = pd.read_parquet(folder.output(SWITCHING))
        kept = decisions.loc[decisions["selection"] == "kept_by_margin"].set_index(ID)["previous_loss"].to_dict()
    pools, calibration = calibration_pools(folder)
    record = RunRecord(
        manifest=manifest,
        settings=settings,
        ledger=pd.read_parquet(folder.output("ledger")),
        leaderboard=pd.read_parquet(folder.output("leaderboard")),
        scores=pd.read_parquet(folder.output("scores")),
        history=history,
        artifacts=[folder.manifest, folder.summary, folder.output("ledger"), folder.output("leaderboard")],
        read_backtest=lambda: pd.read_parquet(folder.output("backtest")),
        groups=training_groups(folder),
        global_params=global_params(folder, manifest.shards),
        pools=pools,
        calibration=calibration,
        previous_scores={str(k): float(v) for k, v in kept.items()},
        operator=_operator_choice(operator),
    )
    result = register_run(record)
    evidence = result.pop("evidence")
    if len(evidence):
        write_atomic(evidence, folder.output(DECISION))
    folder.write_json(folder.registration, result)
    if folder.summary.exists():
        summary = folder.read_json(folder.summary)
        summary["mlflow"] = {k: result[k] for k in ("tracking_uri", "model_name", "version", "alias")}
        folder.write_json(folder.summary, summary)
    return result


def versioned_table(run: Run, table: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The rows to publish: the run's own, stamped with its version when it became champion;
    the champion bundle's forecasts from this run's fresh history when it is only challenger."""
    folder, manifest, settings = run.folder, run.manifest, run.settings
    path = folder.registration
    if not path.exists() or table.empty:
        return table, {}
    registration = folder.read_json(path)
    champion = registration.get("publish_version", registration["decision"].get("compared_with_version", ""))
    if registration["alias"] != "challenger" or not champion or champion == registration["version"]:
        return table.assign(model_version=registration["version"]), {"forecasts_from_version": registration["version"]}
    from forecasting.registry.registration import bundle_forecasts

    history = run_history(folder, manifest.shards)
    history = history[history[ID].isin(set(table[ID]))]
    rows = bundle_forecasts(settings, champion, history, settings.forecast.horizon)
    run_status = table.drop_duplicates(ID).set_index(ID)["status"]
    rows["status"] = rows["status"].where(rows[ID].map(run_status) != "new", "new")
    published = build_forecast_table(rows, manifest.as_of, folder.run_id,
                                     settings.forecast.quantiles, model_version=champion)
    return published, {"forecasts_from_version": champion}


def decision_lines(folder: RunFolder) -> dict[str, str]:
    """The champion decision in a few lines, for the run report's header ({} without a registration)."""
    path = folder.registration
    if not path.exists():
        return {}
    registration = folder.read_json(path)
    decision = registration.get("decision", {})
    lines = {"registered version": f"{registration['version']} ({registration['alias']})",
             "champion decision": str(decision.get("reason", ""))}
    if decision.get("series_compared"):
        in_sample = decision.get("new_loss_in_sample")
        lines["decision evidence"] = (
            f"held-out loss {decision['new_loss']:.3f} vs champion (version {decision['compared_with_version']}) "
            f"{decision['champion_loss']:.3f} on {decision['series_compared']} series and {decision['weeks']} "
            f"actuals after {decision['window_cutoff']}"
            + (f"; the new winners' own (in-sample) loss there: {in_sample:.3f}" if in_sample is not None else "")
        )
    reasons = json.loads(decision.get("not_comparable") or "{}")
    if reasons:
        lines["not compared"] = ", ".join(f"{why}: {n}" for why, n in sorted(reasons.items(), key=lambda item: -item[1]))
    return lines
