"""The pipeline on a real multi-process Dask cluster: worker death and resume from checkpoints."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from dask_cluster import DaskCluster

from forecasting.config import load_settings
from forecasting.orchestration.executors import shutdown_embedded_cluster
from forecasting.orchestration.local import run_weekly

pytestmark = pytest.mark.slow

PROJECT = Path(__file__).resolve().parents[2]

# Candidates that cost about a second per series, so that a run lasts long enough to be interrupted.
_CANDIDATES = [{"name": n} for n in ("AutoETS", "AutoTheta", "SeasonalNaive", "Naive", "HistoricAverage")]


def _settings(output: Path, **compute):
    overrides = {
        "demo": {"n_series": 24, "n_periods": 104},
        "models": {"candidates": _CANDIDATES},
        "compute": {"n_shards": 3, "series_per_batch": 2, "progress": False, **compute},
        "output": {"root": str(output)},
    }
    return load_settings(PROJECT / "config" / "test.yaml", overrides)


def _outputs(summary: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    forecasts = pd.read_parquet(summary["forecasts"])
    ledger = pd.read_parquet(summary["ledger"])[["unique_id", "status", "winner", "model"]]
    return forecasts, ledger


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory) -> dict:
    """The same work run serially in this process: the reference output."""
    return run_weekly(_settings(tmp_path_factory.mktemp("undisturbed"), executor="serial"))


def _batch_markers(output: Path) -> list[Path]:
    return sorted(output.glob("runs/*/shards/*/batches/*/_SUCCESS"))


def _when(predicate, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.1)


def test_a_killed_worker_costs_no_series(tmp_path: Path, undisturbed: dict) -> None:
    cluster = DaskCluster(tmp_path / "cluster").start()
    output = tmp_path / "out"
    try:
        settings = _settings(output, scheduler_address=cluster.address)

        def kill_after_first_batch() -> None:
            _when(lambda: len(_batch_markers(output)) >= 1)
            cluster.kill_worker(0)

        killer = threading.Thread(target=kill_after_first_batch, daemon=True)
        killer.start()
        summary = run_weekly(settings)
        killer.join(timeout=5)
        assert cluster.workers[0].poll() is not None, "the worker was not killed during the run"
    finally:
        cluster.stop()
        shutdown_embedded_cluster()

    forecasts, ledger = _outputs(summary)
    expected_forecasts, expected_ledger = _outputs(undisturbed)
    assert summary["run_id"] == undisturbed["run_id"]
    assert not forecasts.duplicated(["unique_id", "forecast_origin", "ds"]).any()
    pd.testing.assert_frame_equal(ledger, expected_ledger)
    pd.testing.assert_frame_equal(forecasts, expected_forecasts)


def test_a_rerun_after_the_whole_cluster_died_resumes_from_checkpoints(tmp_path: Path, undisturbed: dict) -> None:
    output = tmp_path / "out"
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text(yaml.safe_dump(_settings(output, executor="dask").model_dump(mode="json")))
    command = [str(Path(sys.executable).parent / "forecasting"), "run", "--config", str(settings_file), "--json"]
    cluster = DaskCluster(tmp_path / "cluster").start()
    try:
        first = subprocess.Popen([*command, "--scheduler", cluster.address], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _when(lambda: len(_batch_markers(output)) >= 2)
        cluster.stop()
        first.kill()
        first.wait(timeout=30)
    finally:
        cluster.stop()
    finished_before = {marker: marker.stat().st_mtime_ns for marker in _batch_markers(output)}
    assert 2 <= len(finished_before) < 12, "the cluster should have died in the middle of the run"

    cluster = DaskCluster(tmp_path / "cluster2").start()
    try:
        rerun = subprocess.run([*command, "--scheduler", cluster.address], capture_output=True, text=True, timeout=600)
    finally:
        cluster.stop()
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    summary = json.loads(rerun.stdout.strip().splitlines()[-1])
    for marker, mtime in finished_before.items():
        assert marker.stat().st_mtime_ns == mtime, f"{marker} was recomputed instead of reused"
    forecasts, ledger = _outputs(summary)
    expected_forecasts, expected_ledger = _outputs(undisturbed)
    pd.testing.assert_frame_equal(ledger, expected_ledger)
    pd.testing.assert_frame_equal(forecasts, expected_forecasts)
