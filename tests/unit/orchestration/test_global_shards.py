"""A run with a global candidate: fitted per shard before the batches, competing per series."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from forecasting.config import load_settings
from forecasting.orchestration.local import run_weekly

pytestmark = pytest.mark.slow

TEST_CONFIG = Path(__file__).resolve().parents[3] / "config" / "test.yaml"
CHEAP = {"n_estimators": 15, "num_leaves": 7, "min_child_samples": 5}


def test_global_candidate_runs_per_shard_and_records_its_tuned_parameters(tmp_path: Path):
    settings = load_settings(TEST_CONFIG, {
        "output": {"root": str(tmp_path)},
        "demo": {"n_series": 12},
        "compute": {"executor": "serial", "progress": False, "n_shards": 2},
        "models": {"candidates": [{"name": "Naive"}, {"name": "SeasonalNaive"}, {"name": "LightGBM", "params": CHEAP}]},
        "tuning": {"n_trials": 2, "seed": 3},
        "backtest": {"n_windows": 2},
    })
    summary = run_weekly(settings)
    board = pd.read_parquet(summary["leaderboard"])
    ledger = pd.read_parquet(summary["ledger"])
    backtested = ledger[ledger["status"] == "ok"]["unique_id"]
    assert set(board[board["candidate"] == "LightGBM"]["unique_id"]) == set(backtested)
    assert "Ensemble" in set(board["candidate"])  # the pooled ensemble, scored like any candidate
    recorded = summary["global_models"]
    assert sorted(recorded) == ["0", "1"]
    for shard in recorded.values():
        info = shard["LightGBM"]
        assert info["n_trials"] == 2 and info["seed"] == 3
        assert set(info["params"]) >= {"n_estimators", "learning_rate", "num_leaves"}
    forecasts = pd.read_parquet(summary["forecasts"])
    assert forecasts[["p10", "p50", "p90"]].notna().all().all()
