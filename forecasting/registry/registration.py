"""Register a finished run: its MLflow run, its bundle version, and the champion decision."""

from __future__ import annotations

import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from forecasting import __version__
from forecasting.config import Settings
from forecasting.data.contract import ID
from forecasting.registry import operator
from forecasting.registry.bundle import (
    BundleForecaster,
    GlobalParams,
    signature,
    winners_manifest,
    write_bundle,
)
from forecasting.registry.champion import CHAMPION, Context, Decision, Policy, decide
from forecasting.registry.comparison import NewRun, champion_evidence
from forecasting.registry.integrity import directory_hashes, encode
from forecasting.registry.store import ensure_store, store_lock, tracking_uri
from forecasting.registry.tracking import RunManifest, log_run, run_metrics, run_params
from forecasting.registry.versions import (
    BUNDLE_PATH,
    create_version,
    download_verified,
    ensure_registered_model,
    versions_of_run,
)

BUNDLE_CODE = Path(__file__).with_name("bundle_model.py")
DECISION_TAG = "forecasting.decision.alias"
_PINNED = ("mlflow", "statsforecast", "pandas", "numpy", "pyarrow", "pydantic", "pydantic-settings", "pyyaml")


@dataclass(frozen=True)
class OperatorChoice:
    """A person's decision for a new version, made when the run was started (the DAG's params)."""

    alias: str = ""  # champion | challenger; "" = the rule decides
    pin: bool = False  # pin the champion after this decision
    by: str = ""
    reason: str = ""


@dataclass
class RunRecord:
    """What a finished pipeline run hands to the registry (frames and paths, no run folder)."""

    manifest: RunManifest
    settings: Settings
    ledger: pd.DataFrame
    leaderboard: pd.DataFrame
    scores: pd.DataFrame
    history: pd.DataFrame
    artifacts: list[Path]  # ledger, leaderboard, manifest, summary, ... logged as run artifacts
    # read only when a champion is compared with (the largest frame of a run; a first run never needs it)
    read_backtest: Callable[[], pd.DataFrame] = pd.DataFrame
    groups: dict[str, str] = field(default_factory=dict)  # series -> training group (global models' panel)
    global_params: GlobalParams = field(default_factory=dict)
    pools: dict[str, str] = field(default_factory=dict)  # series -> calibration pool
    calibration: dict[str, str] = field(default_factory=dict)  # pool -> its calibrators (JSON text)
    previous_scores: dict[str, float] = field(default_factory=dict)  # series kept by the switching margin -> loss
    operator: OperatorChoice = field(default_factory=OperatorChoice)

    @property
    def run_id(self) -> str:
        return self.manifest.run_id

    @property
    def as_of(self) -> str:
        """The run's as-of date as its manifest writes it (ISO)."""
        return self.manifest.as_of.isoformat()


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


def _champion(client: Any, settings: Settings, run_id: str) -> Any | None:
    """The current champion version, unless there is none or it is this run's."""
    from forecasting.registry.tracking import RUN_ID_TAG

    name = settings.registry.model_name
    version = operator.alias_version(client, name, CHAMPION)
    if not version:
        return None
    found = client.get_model_version(name, version)
    return None if found.tags.get(RUN_ID_TAG) == run_id else found


def champion_version(settings: Settings, run_id: str) -> str:
    """The current champion's version ("" if none, or if it is this run's)."""
    ensure_store(settings)
    found = _champion(_client(settings), settings, run_id)
    return str(found.version) if found is not None else ""


def load_bundle(settings: Settings, version: str, folder: Path) -> BundleForecaster:
    """A registered version's bundle (verified) as a forecaster, downloaded into ``folder``."""
    local = download_verified(_client(settings), settings.registry.model_name, str(version), folder)
    return BundleForecaster.from_folder(local / "artifacts")


def _with_champion_series(client: Any, record: RunRecord, winners: pd.DataFrame, history: pd.DataFrame
                          ) -> tuple[pd.DataFrame, pd.DataFrame, GlobalParams, dict[str, str]]:
    """A run over a subset of series carries the champion's other series over, so that every
    version's bundle covers the whole panel (the champion's entries for the subset are replaced)."""
    name = record.settings.registry.model_name
    version = operator.alias_version(client, name, CHAMPION)
    if not version:
        return winners, history, record.global_params, record.calibration
    with tempfile.TemporaryDirectory() as tmp:
        local = download_verified(client, name, version, Path(tmp)) / "artifacts"
        old = BundleForecaster.from_folder(local)
    old_winners = old.winners.reset_index()
    if "global_group" not in old_winners or (old_winners["global_group"].fillna("") == "").any():
        old_winners["global_group"] = [old.group_of(uid) or "" for uid in old_winners[ID]]
    covered = set(record.ledger[ID].astype(str))
    keep_winners = old_winners[~old_winners[ID].astype(str).isin(covered)]
    keep_history = old.history[~old.history[ID].astype(str).isin(covered)] if old.history is not None else None
    merged = pd.concat([keep_winners, winners], ignore_index=True).sort_values(ID).reset_index(drop=True)
    params = {**old.global_params, **record.global_params}
    histories = [keep_history, history[[ID, "ds", "y"]]] if keep_history is not None else [history]
    return merged, pd.concat(histories, ignore_index=True), params, {**old.calibration, **record.calibration}


def bundle_winners(record: RunRecord) -> pd.DataFrame:
    """The run's winners manifest; series kept by the switching margin score as the model they kept."""
    winners = winners_manifest(record.ledger, record.leaderboard, record.groups, record.pools)
    kept = winners[ID].astype(str).map(record.previous_scores)
    if kept.notna().any():
        winners.loc[kept.notna(), "scaled_quantile_loss"] = kept[kept.notna()]
        winners.loc[kept.notna(), ["mase", "coverage"]] = float("nan")
    return winners


def _save_bundle(folder: Path, record: RunRecord, client: Any) -> Path:
    winners, history, params, calibration = bundle_winners(record), record.history, record.global_params, record.calibration
    if record.manifest.series_subset:
        winners, history, params, calibration = _with_champion_series(client, record, winners, history)
    files = write_bundle(folder / "files", record.run_id, record.as_of, record.settings,
                         winners, history, params, calibration)
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
        pip_requirements=pip_requirements(record.manifest.plugins),
        metadata={"run_id": record.run_id, "as_of": record.as_of},
    )


def _evidence(client: Any, record: RunRecord, champion: Any) -> tuple[pd.DataFrame, dict[str, Any], str]:
    """The evidence against the champion's bundle, and the champion's origin."""
    settings = record.settings
    with tempfile.TemporaryDirectory(prefix="forecasting-champion-") as tmp:
        local = download_verified(client, settings.registry.model_name, str(champion.version), Path(tmp))
        forecaster = BundleForecaster.from_folder(local / "artifacts")
        new = NewRun(settings, record.as_of, record.ledger, record.read_backtest(), record.history)
        frame, summary = champion_evidence(new, forecaster)
    return frame, summary, forecaster.as_of


def _context(client: Any, record: RunRecord, champion: Any, champion_as_of: str) -> Context:
    name = record.settings.registry.model_name
    pin = operator.current_pin(client, name)
    choice = record.operator
    return Context(
        champion_version=str(champion.version) if champion is not None else "",
        champion_as_of=champion_as_of,
        new_as_of=record.as_of,
        pinned_by=pin["by"] if pin else "",
        pinned_reason=pin["reason"] if pin else "",
        operator_alias=choice.alias,
        operator=choice.by,
        operator_reason=choice.reason,
    )


def _policy(settings: Settings) -> Policy:
    registry = settings.registry
    return Policy(registry.champion_margin, registry.undecided, registry.max_champion_age_weeks)


def _decide_and_alias(client: Any, record: RunRecord, version: Any) -> tuple[Decision, pd.DataFrame]:
    settings = record.settings
    name = settings.registry.model_name
    number = str(version.version)
    # embedded store: one decision at a time; a server: concurrent decisions are last-writer-wins,
    # and the alias always points at a complete version either way
    with store_lock(settings):
        champion = _champion(client, settings, record.run_id)
        frame, summary, champion_as_of = (_evidence(client, record, champion) if champion is not None
                                          else (pd.DataFrame(), {}, ""))
        decision = decide(summary, _context(client, record, champion, champion_as_of), _policy(settings))
        if not frame.empty:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "evidence.parquet"
                frame.to_parquet(path, index=False)
                client.log_artifact(version.run_id, str(path), "decision")
        tags = decision.tags()
        alias_tag = tags.pop(DECISION_TAG)
        for key, value in [*tags.items(), (DECISION_TAG, alias_tag)]:  # the alias tag last: it marks "decided"
            _retried(client.set_model_version_tag, name, number, key, value)
        previous = operator.alias_version(client, name, CHAMPION)
        _retried(client.set_registered_model_alias, name, decision.alias, number)
        if decision.alias == CHAMPION and previous != number:
            by = record.operator.by if decision.decided_by != "rule" else "forecasting (rule)"
            operator.record(client, name, "auto" if decision.decided_by == "rule" else "promote", by, decision.reason,
                            number, previous)
        if record.operator.pin and record.operator.by:
            pinned = operator.alias_version(client, name, CHAMPION)
            operator.set_pin(client, name, pinned, record.operator.by, record.operator.reason)
            operator.record(client, name, "pin", record.operator.by, record.operator.reason, pinned)
    return decision, frame


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
    version, reused = create_version(client, settings.registry.model_name, record.run_id, mlflow_run_id, hashes,
                                     record.as_of)
    client.set_terminated(mlflow_run_id)
    if reused:
        client.delete_run(mlflow_run_id)
    return version, reused


def register_run(record: RunRecord) -> dict[str, Any]:
    """Log the run, register its bundle (reused on a rerun of the run id) and decide its alias.

    Returns the version, its alias, the decision (``Decision.record``), the version whose
    forecasts are published for this origin (``publish_version``: this one as champion, the
    champion's as challenger) and, when a comparison was made, its per-series ``evidence``.
    """
    settings = record.settings
    experiment_id = ensure_store(settings)
    client = _client(settings)
    name = settings.registry.model_name
    ensure_registered_model(client, name)
    existing = versions_of_run(client, name, record.run_id)
    evidence = pd.DataFrame()
    if existing:  # a rerun: the version of the first attempt, decided then (or now, if that attempt died)
        version, reused = existing[0], True
        decision = Decision.from_tags(version.tags) if DECISION_TAG in version.tags else None
    else:
        version, reused = _create(client, record, experiment_id)
        # a concurrent registration of the same run id created the surviving version: it decides
        decision = _await_decision(client, name, str(version.version)) if reused else None
    if decision is None:
        decision, evidence = _decide_and_alias(client, record, version)
    own = str(version.version)
    return {
        "tracking_uri": tracking_uri(settings),
        "model_name": name,
        "version": own,
        "alias": decision.alias,
        "mlflow_run_id": version.run_id,
        "reused": reused,
        "decision": decision.record(),
        "publish_version": own if decision.alias == CHAMPION else decision.compared_with_version,
        "evidence": evidence,
    }


def bundle_forecasts(settings: Settings, version: str, history: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """Forecasts of registered ``version`` (verified) for the series in ``history``, refitted on it."""
    with tempfile.TemporaryDirectory(prefix="forecasting-bundle-") as folder:  # one per publish: not left behind
        return load_bundle(settings, version, Path(folder)).predict(history[[ID, "ds", "y"]], horizon)
