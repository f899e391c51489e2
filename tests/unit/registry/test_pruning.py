"""Retention in the registry: versions of expired runs go with their artifacts; aliased versions stay."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import pytest

from forecasting.config import load_settings
from forecasting.registry.integrity import HASH_TAG
from forecasting.registry.pruning import prune_runs
from forecasting.registry.store import ensure_store, tracking_uri
from forecasting.registry.tracking import RUN_ID_TAG

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def _register(client, experiment_id: str, name: str, run_id: str, tmp_path: Path) -> tuple[str, Path]:
    run = client.create_run(experiment_id, run_name=run_id)
    payload = tmp_path / f"{run_id}.json"
    payload.write_text("{}")
    client.log_artifact(run.info.run_id, str(payload), "bundle")
    version = client.create_model_version(
        name, f"runs:/{run.info.run_id}/bundle", run_id=run.info.run_id, tags={RUN_ID_TAG: run_id, HASH_TAG: "x"}
    )
    return str(version.version), Path(urlparse(run.info.artifact_uri).path)


def test_expired_versions_are_deleted_and_aliased_ones_kept(tmp_path: Path):
    from mlflow import MlflowClient

    settings = load_settings(None, {"output": {"root": str(tmp_path / "out")}})
    experiment_id = ensure_store(settings)
    uri = tracking_uri(settings)
    client = MlflowClient(uri, uri)
    name = settings.registry.model_name
    client.create_registered_model(name)
    champion, champion_artifacts = _register(client, experiment_id, name, "run-old-champion", tmp_path)
    expired, expired_artifacts = _register(client, experiment_id, name, "run-old", tmp_path)
    recent, _ = _register(client, experiment_id, name, "run-recent", tmp_path)
    client.set_registered_model_alias(name, "champion", champion)

    assert prune_runs(settings, ["run-old-champion", "run-old"]) == [expired]

    left = {str(v.version) for v in client.search_model_versions(f"name = '{name}'")}
    assert left == {champion, recent}
    assert str(client.get_model_version_by_alias(name, "champion").version) == champion
    assert not expired_artifacts.exists() and champion_artifacts.exists()
