"""Register a finished run: its MLflow run, its bundle version, and the champion decision."""

from __future__ import annotations

import math
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from forecasting import __version__
from forecasting.config import Settings
from forecasting.registry.bundle import WINNERS, signature, winners_manifest, write_bundle
from forecasting.registry.champion import CHAMPION, Decision, decide
from forecasting.registry.integrity import directory_hashes, encode
from forecasting.registry.store import ensure_store, store_lock, tracking_uri
from forecasting.registry.tracking import log_run, run_metrics, run_params
from forecasting.registry.versions import (
    BUNDLE_PATH,
    create_version,
    download_verified,
    ensure_registered_model,
    load_verified,
    versions_of_run,
)

BUNDLE_CODE = Path(__file__).with_name("bundle_model.py")
DECISION_TAG = "forecasting.decision.alias"
_PINNED = ("mlflow", "statsforecast", "pandas", "numpy", "pyarrow", "pydantic", "pydantic-settings", "pyyaml")


@dataclass
class RunRecord:
    """What a finished pipeline run hands to the registry (frames and paths, no run folder)."""

    manifest: dict[str, Any]
    settings: Settings
    ledger: pd.DataFrame
    leaderboard: pd.DataFrame
    scores: pd.DataFrame
    history: pd.DataFrame
    artifacts: list[Path]  # ledger, leaderboard, manifest, summary, ... logged as run artifacts

    @property
    def run_id(self) -> str:
        return str(self.manifest["run_id"])


def pip_requirements(plugins: dict[str, str]) -> list[str]:
    """Explicit requirements (inferring them costs seconds per model)."""
    pins = [f"forecasting=={__version__}"]
    for name in _PINNED:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return pins + sorted(set(plugins.values()))


def _client(settings: Settings) -> Any:
    from mlflow import MlflowClient

    uri = tracking_uri(settings)
    return MlflowClient(uri, uri)


def _champion_winners(client: Any, settings: Settings, run_id: str) -> tuple[pd.DataFrame | None, str]:
    """The current champion's winners manifest (verified), unless there is none or it is this run's."""
    from mlflow.exceptions import MlflowException

    from forecasting.registry.tracking import RUN_ID_TAG

    name = settings.registry.model_name
    try:
        champion = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None, ""
    if champion.tags.get(RUN_ID_TAG) == run_id:
        return None, ""
    with tempfile.TemporaryDirectory() as tmp:
        local = download_verified(client, name, champion.version, Path(tmp))
        return pd.read_parquet(local / "artifacts" / f"{WINNERS}.parquet"), str(champion.version)


def champion_manifest(settings: Settings, run_id: str) -> tuple[pd.DataFrame | None, str]:
    """(winners, version) of the current champion, for the switching margin; (None, "") if none."""
    ensure_store(settings)
    return _champion_winners(_client(settings), settings, run_id)


def _with_champion_series(client: Any, record: RunRecord, winners: pd.DataFrame, history: pd.DataFrame
                          ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A run over a subset of series carries the champion's other series over, so that every
    version's bundle covers the whole panel (the champion's entries for the subset are replaced)."""
    from mlflow.exceptions import MlflowException

    name = record.settings.registry.model_name
    try:
        champion = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return winners, history
    with tempfile.TemporaryDirectory() as tmp:
        local = download_verified(client, name, str(champion.version), Path(tmp)) / "artifacts"
        old_winners = pd.read_parquet(local / f"{WINNERS}.parquet")
        old_history = pd.read_parquet(local / "history.parquet")
    covered = set(record.ledger["unique_id"].astype(str))
    keep_winners = old_winners[~old_winners["unique_id"].astype(str).isin(covered)]
    keep_history = old_history[~old_history["unique_id"].astype(str).isin(covered)]
    merged = pd.concat([keep_winners, winners], ignore_index=True).sort_values("unique_id").reset_index(drop=True)
    return merged, pd.concat([keep_history, history[["unique_id", "ds", "y"]]], ignore_index=True)


def _save_bundle(folder: Path, record: RunRecord, client: Any) -> Path:
    winners, history = winners_manifest(record.ledger, record.leaderboard), record.history
    if record.manifest.get("series_subset"):
        winners, history = _with_champion_series(client, record, winners, history)
    files = write_bundle(folder / "files", record.run_id, str(record.manifest["as_of"]), record.settings,
                         winners, history)
    target = folder / BUNDLE_PATH
    with warnings.catch_warnings():
        # an input example would make MLflow run a forecast at save time; the signature says it all
        warnings.filterwarnings("ignore", message=".*input example was not provided.*")
        _save_pyfunc(target, files, record)
    return target


def _save_pyfunc(target: Path, files: dict[str, str], record: RunRecord) -> None:
    import mlflow

    mlflow.pyfunc.save_model(
        str(target),
        python_model=str(BUNDLE_CODE),
        artifacts=files,
        signature=signature(record.settings),
        pip_requirements=pip_requirements(record.manifest.get("plugins", {})),
        metadata={"run_id": record.run_id, "as_of": str(record.manifest["as_of"])},
    )


def _decide_and_alias(client: Any, record: RunRecord, version: str) -> Decision:
    settings = record.settings
    name = settings.registry.model_name
    # embedded store: one decision at a time; a server: concurrent decisions are last-writer-wins,
    # and the alias always points at a complete version either way
    with store_lock(settings):
        champion, champion_version = _champion_winners(client, settings, record.run_id)
        new = winners_manifest(record.ledger, record.leaderboard)
        decision = decide(new, champion, record.scores, settings.registry.champion_margin, champion_version)
        tags = decision.tags()
        alias_tag = tags.pop(DECISION_TAG)
        for key, value in [*tags.items(), (DECISION_TAG, alias_tag)]:  # the alias tag last: it marks "decided"
            _retried(client.set_model_version_tag, name, version, key, value)
        _retried(client.set_registered_model_alias, name, decision.alias, version)
    return decision


def _retried(call: Any, *args: Any, attempts: int = 4) -> None:
    """Set a tag or alias. The server inserts a new one after looking for it, so two writers of the
    same new tag or alias at once make one insert fail (a unique constraint): the retry updates."""
    from mlflow.exceptions import MlflowException

    for attempt in range(attempts):
        try:
            call(*args)
            return
        except MlflowException:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


def _await_decision(client: Any, name: str, version: str, timeout: float = 60.0) -> Decision | None:
    """The decision another registration of the same run id is writing (None if it never comes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tags = client.get_model_version(name, version).tags
        if DECISION_TAG in tags:
            return Decision.from_tags(tags)
        time.sleep(0.5)
    return None


def _create(client: Any, record: RunRecord, experiment_id: str) -> tuple[Any, bool]:
    """A new MLflow run with the bundle, and its version; (surviving version, reused) on a race.

    Every attempt logs into its own MLflow run, so two attempts never write the same files;
    the attempt that loses a race for the run id deletes its run.
    """
    settings = record.settings
    with tempfile.TemporaryDirectory(prefix="forecasting-register-") as tmp:
        bundle = _save_bundle(Path(tmp), record, client)
        hashes = encode(directory_hashes(bundle))
        metrics = run_metrics(record.ledger, record.leaderboard)
        mlflow_run_id = log_run(client, experiment_id, record.run_id, run_params(record.manifest, settings),
                                metrics, record.artifacts, record.manifest)
        client.log_artifacts(mlflow_run_id, str(bundle), BUNDLE_PATH)
    version, reused = create_version(client, settings.registry.model_name, record.run_id, mlflow_run_id, hashes)
    client.set_terminated(mlflow_run_id)
    if reused:
        client.delete_run(mlflow_run_id)
    return version, reused


def register_run(record: RunRecord) -> dict[str, Any]:
    """Log the run, register its bundle (reused on a rerun of the run id) and decide its alias."""
    settings = record.settings
    experiment_id = ensure_store(settings)
    client = _client(settings)
    name = settings.registry.model_name
    ensure_registered_model(client, name)
    existing = versions_of_run(client, name, record.run_id)
    if existing:  # a rerun: the version of the first attempt, decided then (or now, if that attempt died)
        version, reused = existing[0], True
        decision = Decision.from_tags(version.tags) if DECISION_TAG in version.tags else None
    else:
        version, reused = _create(client, record, experiment_id)
        # a concurrent registration of the same run id created the surviving version: it decides
        decision = _await_decision(client, name, str(version.version)) if reused else None
    if decision is None:
        decision = _decide_and_alias(client, record, str(version.version))
    return {
        "tracking_uri": tracking_uri(settings),
        "model_name": name,
        "version": str(version.version),
        "alias": decision.alias,
        "mlflow_run_id": version.run_id,
        "reused": reused,
        "decision": {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in asdict(decision).items()},
    }


def bundle_forecasts(settings: Settings, version: str, history: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """Forecasts of registered ``version`` (verified) for the series in ``history``, refitted on it."""
    with tempfile.TemporaryDirectory(prefix="forecasting-bundle-") as folder:  # one per publish: not left behind
        model = load_verified(f"models:/{settings.registry.model_name}/{version}", tracking_uri(settings), Path(folder))
        return model.predict(history[["unique_id", "ds", "y"]], params={"horizon": horizon})
