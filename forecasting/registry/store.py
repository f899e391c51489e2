"""Where runs and versions are stored: an embedded SQLite store, or a configured server.

The embedded store lives under ``<output root>/mlflow/`` (``mlflow.db`` and ``artifacts/``).
Creating a fresh SQLite store runs database migrations, and processes that race to do
it crash, so ``ensure_store`` creates it once, under a file lock, before any parallel work.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from forecasting.config import Settings

EMBEDDED_FOLDER = "mlflow"


def embedded_root(settings: Settings) -> Path:
    return Path(settings.output.root).resolve() / EMBEDDED_FOLDER


def tracking_uri(settings: Settings) -> str:
    """The configured tracking URI, or the embedded SQLite store's."""
    if settings.registry.tracking_uri:
        return settings.registry.tracking_uri
    return f"sqlite:///{embedded_root(settings) / 'mlflow.db'}"


def is_embedded(settings: Settings) -> bool:
    return not settings.registry.tracking_uri


@contextmanager
def store_lock(settings: Settings) -> Iterator[None]:
    """Serialise work on the embedded store between processes (no-op for a server)."""
    if not is_embedded(settings):
        yield
        return
    root = embedded_root(settings)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def quiet_mlflow() -> None:
    """MLflow defaults for a batch job (set when a step first uses MLflow, never at import)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # the bundle pins its requirements explicitly: no copy of the project's uv.lock in every version
    os.environ.setdefault("MLFLOW_LOG_UV_FILES", "false")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def use_store(settings: Settings) -> str:
    """Point this process's MLflow at the store (called by the steps that log, never at import)."""
    import mlflow

    quiet_mlflow()
    uri = tracking_uri(settings)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def ensure_store(settings: Settings) -> str:
    """Create the store (embedded: database and artifact folder) and the experiment, once.

    Returns the experiment id. Safe to call from many processes: the first creates, the
    others find.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    uri = use_store(settings)
    with store_lock(settings):
        client = MlflowClient(uri, uri)
        experiment = client.get_experiment_by_name(settings.registry.experiment)
        if experiment is not None:
            return experiment.experiment_id
        location = None
        if is_embedded(settings):
            artifacts = embedded_root(settings) / "artifacts"
            artifacts.mkdir(parents=True, exist_ok=True)
            location = artifacts.as_uri()
        try:
            return client.create_experiment(settings.registry.experiment, artifact_location=location)
        except MlflowException:  # another process created it between our look-up and create
            found = client.get_experiment_by_name(settings.registry.experiment)
            if found is None:
                raise
            return found.experiment_id
