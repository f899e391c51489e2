"""Misbehaving plug-ins on a real Dask cluster (scheduler and worker processes): contained per series.

The fixture plug-in is discovered by the workers through its entry points (its folder on their
PYTHONPATH), named in config like any model; it crashes with a segfault on one series and hangs on
another. Both cost only that series that candidate, and the worker lives on.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecasting.config import load_settings
from forecasting.orchestration.executors import shutdown_embedded_cluster
from forecasting.orchestration.local import run_weekly

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from dask_cluster import DaskCluster  # noqa: E402 - the integration tests' real cluster

pytestmark = pytest.mark.slow

N = 60
CRASH, HANG = 7000.0, 7001.0


def _panel() -> pd.DataFrame:
    t = np.arange(N, dtype=np.float64)
    levels = {"s0": 100.0, "s1": CRASH, "s2": 200.0, "s3": 300.0, "s4": HANG, "s5": 400.0}
    frames = [
        pd.DataFrame({"unique_id": uid, "ds": pd.date_range("2023-01-01", periods=N, freq="W-SUN"),
                      "y": level + 10.0 * np.sin(t / 3.0) + 0.2 * t})  # starts exactly at its level
        for uid, level in levels.items()
    ]
    return pd.concat(frames, ignore_index=True)


def test_plugin_crash_and_hang_on_a_dask_cluster_cost_one_series_each(tmp_path, fixture_plugins, monkeypatch):
    data = tmp_path / "history.parquet"
    _panel().to_parquet(data)
    monkeypatch.setenv("PYTHONPATH", str(fixture_plugins))  # the workers' view of installed plug-ins
    settings = load_settings(overrides={
        "data": {"path": str(data)},
        "forecast": {"horizon": 4, "season_length": 4},
        "models": {"candidates": [
            {"name": "Naive"},
            {"name": "Misbehaving", "alias": "Crashes", "params": {"mode": "segfault", "trigger": CRASH}},
            {"name": "Misbehaving", "alias": "Hangs", "params": {"mode": "hang", "trigger": HANG}},
            {"name": "Misbehaving", "alias": "Fine", "params": {"width": 5.0}},
        ]},
        "ensemble": {"enabled": False},  # each series its best single candidate
        "plugins": {"limits": {"Misbehaving": {"timeout_seconds": 3}}, "verdict_cache": str(tmp_path / "verdicts")},
        "compute": {"n_shards": 2, "series_per_batch": 3, "progress": False},
        "output": {"root": str(tmp_path / "out")},
    })
    cluster = DaskCluster(tmp_path / "cluster", n_workers=1).start()  # one: less import contention on 2 cores
    try:
        settings.compute.scheduler_address = cluster.address
        summary = run_weekly(settings)
        assert all(worker.poll() is None for worker in cluster.workers), "the worker died"
    finally:
        cluster.stop()
        shutdown_embedded_cluster()

    ledger = pd.read_parquet(summary["ledger"]).set_index("unique_id")
    assert (ledger["status"] == "ok").all()
    # the first backtest window is cut after 44 of the 60 observations
    assert "Crashes cutoff 44: signal: the child process died while fitting this series" in ledger.loc["s1", "failures"]
    assert "SIGSEGV" in ledger.loc["s1", "failures"]
    assert "Hangs cutoff 44: timeout: no result within 3 s" in ledger.loc["s4", "failures"]
    assert (ledger.drop(index=["s1", "s4"])["failures"] == "").all()
    scored = pd.read_parquet(summary["leaderboard"]).groupby("unique_id")["candidate"].agg(set)
    everything = {"Naive", "Crashes", "Hangs", "Fine", "HistoricAverage"}  # the fallbacks are backtested too
    assert scored["s1"] == everything - {"Crashes"} and scored["s4"] == everything - {"Hangs"}
    assert all(scored[uid] == everything for uid in ("s0", "s2", "s3", "s5"))
    # the run report shows the plug-in, how it ran and what its misbehaviour cost
    import html
    import re

    text = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", Path(summary["report"]).read_text())))
    assert "Misbehaving forecasting-test-misbehaving==0.0.1 child process per batch and plug-in" in text
    assert re.search(r"timeout_seconds 3\.0.* signal 1, timeout 1|timeout 1, signal 1", text)
    assert "Crashes backtest signal 1 s1" in text and "Hangs backtest timeout 1 s4" in text
    assert re.search(r"Crashes plug-in 5 [\d.]+ [\d.]+ (?:[\d.]+%|-) (?:[\d.]+%|-) \d+ \d+ 1 ", text)
