"""The registry against a real `mlflow server` (SQLite store) on 127.0.0.1.

Two runs (and a duplicate of one of them) register at the same moment from three
processes: afterwards every run id has exactly one version, none is lost, and the
champion alias, polled all along, only ever resolves to a complete version.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from mlflow_server import MlflowServer

from forecasting.config import load_settings
from forecasting.orchestration.steps.finalize import combine_shards
from forecasting.orchestration.steps.prepare import create_run_folder
from forecasting.orchestration.steps.train_shard import train_shard_task
from forecasting.registry.integrity import HASH_TAG
from forecasting.registry.tracking import RUN_ID_TAG
from forecasting.registry.versions import load_verified

pytestmark = pytest.mark.slow

PROJECT_ROOT = Path(__file__).resolve().parents[2]
NAME = "forecasting"
REGISTER = """
import json, pathlib, sys, time
import mlflow, forecasting.registry.registration
from forecasting.orchestration.steps.register import register
pathlib.Path(sys.argv[2]).touch()
while not pathlib.Path(sys.argv[3]).exists():
    time.sleep(0.01)
print(json.dumps(register(sys.argv[1])))
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    running = MlflowServer(tmp_path_factory.mktemp("mlflow-server")).start()
    yield running
    running.stop()


def _trained_run(root: Path, uri: str, seed: int) -> str:
    settings = load_settings(PROJECT_ROOT / "config" / "test.yaml", {
        "output": {"root": str(root)}, "demo": {"n_series": 10, "seed": seed},
        "models": {"candidates": [{"name": n} for n in ("SeasonalNaive", "Naive", "HistoricAverage")]},
        "registry": {"enabled": True, "tracking_uri": uri},
    })
    prepared = create_run_folder(settings)
    for shard in prepared["shards"]:
        train_shard_task(prepared["run_dir"], shard)
    combine_shards(prepared["run_dir"])
    return prepared["run_dir"]


def _complete(version) -> bool:
    tags = version.tags
    return (version.status == "READY" and bool(tags.get(HASH_TAG)) and bool(tags.get(RUN_ID_TAG))
            and "forecasting.decision.alias" in tags)


def test_concurrent_registrations_lose_nothing_and_duplicate_nothing(server: MlflowServer, tmp_path: Path):
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    run_a = _trained_run(tmp_path / "a", server.url, seed=1)
    run_b = _trained_run(tmp_path / "b", server.url, seed=2)
    # the same run id registered twice at once (a retried task racing its first attempt)
    copy = tmp_path / "a-retry" / "runs" / Path(run_a).name
    shutil.copytree(run_a, copy)
    run_dirs = [run_a, run_b, str(copy)]

    client = MlflowClient(server.url, server.url)
    observed, incomplete, stop = [], [], threading.Event()

    def poll_alias() -> None:
        while not stop.is_set():
            try:
                version = client.get_model_version_by_alias(NAME, "champion")
            except MlflowException:
                time.sleep(0.05)
                continue
            observed.append(version.version)
            if not _complete(version):
                incomplete.append(version)

    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "MLFLOW_DISABLE_TELEMETRY": "true"}
    processes = [
        subprocess.Popen([sys.executable, "-c", REGISTER, run_dir, str(tmp_path / f"ready-{i}"), str(go)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for i, run_dir in enumerate(run_dirs)
    ]
    poller = threading.Thread(target=poll_alias, daemon=True)
    poller.start()
    deadline = time.monotonic() + 180
    while not all((tmp_path / f"ready-{i}").exists() for i in range(len(run_dirs))):
        assert time.monotonic() < deadline, "registering processes did not start"
        assert all(p.poll() is None for p in processes), [p.communicate() for p in processes]
        time.sleep(0.05)
    go.touch()
    results = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    time.sleep(0.5)
    stop.set()
    poller.join(5)

    versions = client.search_model_versions(f"name = '{NAME}'")
    by_run: dict[str, list[str]] = {}
    for version in versions:
        by_run.setdefault(version.tags[RUN_ID_TAG], []).append(str(version.version))
    run_ids = {Path(run_a).name, Path(run_b).name}
    assert set(by_run) == run_ids  # nothing lost
    assert all(len(v) == 1 for v in by_run.values()), by_run  # nothing duplicated
    assert results[0]["version"] == results[2]["version"] == by_run[Path(run_a).name][0]
    assert results[1]["version"] == by_run[Path(run_b).name][0]
    assert all(_complete(client.get_model_version(NAME, v[0])) for v in by_run.values())
    assert observed and not incomplete
    champion = client.get_model_version_by_alias(NAME, "champion")
    assert str(champion.version) in {r["version"] for r in results}

    # the champion loads through the server's proxied artifacts and forecasts a named series
    model = load_verified(f"models:/{NAME}@champion", server.url, tmp_path / "download")
    winners = pd.read_parquet(tmp_path / "download" / "artifacts" / "winners.parquet")
    rows = model.predict(pd.DataFrame({"unique_id": [winners["unique_id"].iloc[0]]}))
    assert len(rows) == 13 and rows["p50"].notna().all()
