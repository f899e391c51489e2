"""The global step on the embedded Dask cluster gives the same forecasts as in this process."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from forecasting.config import load_settings
from forecasting.orchestration.executors import shutdown_embedded_cluster
from forecasting.orchestration.local import run_weekly

pytestmark = pytest.mark.slow

PROJECT = Path(__file__).resolve().parents[2]
CHEAP = {"n_estimators": 15, "num_leaves": 7, "min_child_samples": 5}


def _run(output: Path, executor: str) -> pd.DataFrame:
    settings = load_settings(PROJECT / "config" / "test.yaml", {
        "demo": {"n_series": 12, "n_periods": 104},
        "models": {"candidates": [{"name": "Naive"}, {"name": "LightGBM", "params": CHEAP}]},
        "compute": {"executor": executor, "n_shards": 2, "n_workers": 2, "progress": False},
        "output": {"root": str(output)},
    })
    summary = run_weekly(settings)
    assert "global_models" in summary
    board = pd.read_parquet(summary["leaderboard"])
    assert "LightGBM" in set(board["candidate"])
    return pd.read_parquet(summary["forecasts"]).sort_values(["unique_id", "ds"]).reset_index(drop=True)


def test_global_candidate_on_dask_matches_the_serial_run(tmp_path: Path) -> None:
    serial = _run(tmp_path / "serial", "serial")
    try:
        on_dask = _run(tmp_path / "dask", "dask")
    finally:
        shutdown_embedded_cluster()
    columns = ["unique_id", "ds", "p10", "p50", "p90", "model"]
    pd.testing.assert_frame_equal(serial[columns], on_dask[columns])
