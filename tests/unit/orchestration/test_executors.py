"""The one shard executor: the serial and the Dask backend train a run's shards alike, and
the Airflow task (one shard) and the CLI (all shards) both go through it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from forecasting.config import load_settings
from forecasting.orchestration.executors import dask_client, run_shards, shutdown_embedded_cluster
from forecasting.orchestration.run_catalog import Run
from forecasting.orchestration.shards import RESULT_FRAMES
from forecasting.orchestration.steps.prepare import create_run_folder
from forecasting.orchestration.steps.train_shard import train_shard_task

pytestmark = pytest.mark.slow

TEST_CONFIG = Path(__file__).resolve().parents[3] / "config" / "test.yaml"
CHEAP_GLOBAL = {"name": "LightGBM", "params": {"n_estimators": 10, "num_leaves": 5, "min_child_samples": 5}}


def _prepared(root: Path, executor: str) -> tuple[Run, list[int]]:
    settings = load_settings(TEST_CONFIG, {
        "output": {"root": str(root)},
        "demo": {"n_series": 10},
        "models": {"candidates": [{"name": "Naive"}, {"name": "SeasonalNaive"}, CHEAP_GLOBAL]},
        "compute": {"executor": executor, "n_shards": 2, "series_per_batch": 2, "n_workers": 1,
                    "worker_memory_limit": "2GiB", "progress": False},
    })
    prepared = create_run_folder(settings)
    return Run.load(prepared["run_dir"]), prepared["shards"]


def _shard_frames(run: Run, shards: list[int]) -> dict[str, pd.DataFrame]:
    return {f"{shard}/{name}": pd.read_parquet(run.folder.shard_frame(shard, name))
            for shard in shards for name in RESULT_FRAMES}


def test_serial_and_dask_backends_train_the_same_shards(tmp_path: Path):
    serial, shards = _prepared(tmp_path / "serial", "serial")
    counted: list[int] = []
    results = run_shards(serial.settings, serial, shards, on_series_done=counted.append)
    assert [r["shard"] for r in results] == shards and not any(r["skipped"] for r in results)
    assert sum(counted) == sum(r["n_series"] for r in results) == 10  # the progress callback sees every series

    dask, dask_shards = _prepared(tmp_path / "dask", "dask")
    try:
        dask_results = [train_shard_task(str(dask.path), shard) for shard in dask_shards]  # the Airflow task
        with dask_client(dask.settings) as client:
            kept_profiles = client.run(lambda dask_worker: len(dask_worker.profile_history))
    finally:
        shutdown_embedded_cluster()
    assert [r["n_series"] for r in dask_results] == [r["n_series"] for r in results]
    assert set(kept_profiles.values()) == {0}  # compute.worker_profiling is off: the workers keep no profiles
    expected, got = _shard_frames(serial, shards), _shard_frames(dask, dask_shards)
    for name, frame in expected.items():
        pd.testing.assert_frame_equal(got[name], frame, check_exact=False, rtol=1e-9, obj=name)


def test_finished_shards_are_skipped_and_returned_in_order(tmp_path: Path):
    run, shards = _prepared(tmp_path, "serial")
    run_shards(run.settings, run, shards[:1])
    results = run_shards(run.settings, run, list(reversed(shards)))
    assert [r["shard"] for r in results] == list(reversed(shards))
    assert [r["skipped"] for r in results] == [False, True]
    assert results[1]["n_series"] > 0  # the checkpoint's counts come back with a skipped shard
