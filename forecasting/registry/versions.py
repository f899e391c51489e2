"""Registered versions: one per pipeline run id, found again on a rerun, loaded only when intact."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from forecasting.config import Settings
from forecasting.registry.integrity import HASH_TAG, verify
from forecasting.registry.store import tracking_uri
from forecasting.registry.tracking import RUN_ID_TAG

BUNDLE_PATH = "bundle"
AS_OF_TAG = "forecasting.as_of"  # the version's forecast origin


def ensure_registered_model(client: Any, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        try:
            client.create_registered_model(
                name, description="Per-series winners of each pipeline run, one version per run id."
            )
        except MlflowException:  # created by a concurrent run in between
            client.get_registered_model(name)


def versions_of_run(client: Any, name: str, run_id: str) -> list[Any]:
    """Complete versions registered for a pipeline run id, oldest first."""
    found = client.search_model_versions(f"name = '{name}' and tags.`{RUN_ID_TAG}` = '{run_id}'")
    return sorted((v for v in found if v.tags.get(HASH_TAG)), key=lambda v: int(v.version))


def create_version(client: Any, name: str, run_id: str, mlflow_run_id: str, hashes: str, as_of: str = "") -> tuple[Any, bool]:
    """Register the run's bundle once per run id; returns (version, reused).

    The version is created with its hash tag, so it is complete from the start. Two
    concurrent registrations of the same run id may both create one: each then keeps
    the oldest and deletes its own newer one, so exactly one survives.
    """
    existing = versions_of_run(client, name, run_id)
    if existing:
        return existing[0], True
    source = f"runs:/{mlflow_run_id}/{BUNDLE_PATH}"
    tags = {RUN_ID_TAG: run_id, HASH_TAG: hashes, **({AS_OF_TAG: as_of} if as_of else {})}
    mine = client.create_model_version(name, source, run_id=mlflow_run_id, tags=tags, await_creation_for=60)
    survivors = versions_of_run(client, name, run_id)
    if survivors and survivors[0].version != mine.version:
        client.delete_model_version(name, mine.version)
        return survivors[0], True
    return mine, False


def download_verified(client: Any, name: str, version: str, destination: Path) -> Path:
    """Download a version's bundle and check it against its recorded hashes before any use."""
    from mlflow.artifacts import download_artifacts

    details = client.get_model_version(name, version)
    local = Path(download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=str(destination)))
    verify(local, details.tags.get(HASH_TAG), f"model {name} version {version}")
    return local


def resolve(client: Any, model_uri: str) -> tuple[str, str]:
    """(name, version) of ``models:/<name>@<alias>`` or ``models:/<name>/<version>``."""
    if not model_uri.startswith("models:/"):
        raise ValueError(f"expected models:/<name>@<alias> or models:/<name>/<version>, got {model_uri!r}")
    path = model_uri[len("models:/"):]
    if "@" in path:
        name, alias = path.split("@", 1)
        return name, str(client.get_model_version_by_alias(name, alias).version)
    name, version = path.rsplit("/", 1)
    return name, version


def load_verified(model_uri: str, tracking_uri: str | None = None, destination: Path | None = None) -> Any:
    """Load a registered bundle as a pyfunc after checking its artifact hashes.

    ``model_uri``: ``models:/<name>@champion`` (or ``/<version>``). A tampered bundle
    raises ``TamperedBundleError`` before any of its files is loaded.
    """
    import mlflow
    from mlflow import MlflowClient

    from forecasting.registry.store import quiet_mlflow

    quiet_mlflow()
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
    client = MlflowClient()
    name, version = resolve(client, model_uri)
    folder = Path(destination) if destination else Path(tempfile.mkdtemp(prefix="forecasting-bundle-"))
    local = download_verified(client, name, version, folder)
    return mlflow.pyfunc.load_model(str(local))


def pipeline_run_id(settings: Settings, version: str) -> str:
    """The pipeline run id that registered ``version`` ("" when the version is unknown)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    uri = tracking_uri(settings)
    try:
        found = MlflowClient(uri, uri).get_model_version(settings.registry.model_name, version)
    except MlflowException:
        return ""
    return str(found.tags.get(RUN_ID_TAG, ""))
