"""Registry side of the retention policy: the versions of expired pipeline runs go, aliased ones stay."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlparse

from forecasting.config import Settings
from forecasting.registry.store import tracking_uri
from forecasting.registry.versions import versions_of_run


def prune_runs(settings: Settings, run_ids: Iterable[str]) -> list[str]:
    """Delete the versions registered for these pipeline run ids and their MLflow runs.

    A version that holds an alias (``champion``, ``challenger``) is never deleted. Local
    artifact folders are removed at once; on a server, ``mlflow gc`` removes the artifacts of
    the deleted runs. Returns the deleted version numbers.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    uri = tracking_uri(settings)
    client = MlflowClient(uri, uri)
    name = settings.registry.model_name
    try:
        aliased = {str(version) for version in client.get_registered_model(name).aliases.values()}
    except MlflowException:  # nothing registered yet
        return []
    deleted = []
    for run_id in run_ids:
        for version in versions_of_run(client, name, run_id):
            if str(version.version) in aliased:
                continue
            artifacts = client.get_run(version.run_id).info.artifact_uri
            client.delete_model_version(name, version.version)
            client.delete_run(version.run_id)
            location = urlparse(artifacts)
            if location.scheme in ("", "file") and Path(location.path).is_dir():
                shutil.rmtree(location.path)
            deleted.append(str(version.version))
    return deleted
