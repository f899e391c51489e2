"""Run the whole weekly job in this process: prepare, every shard, finalize, publish."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from forecasting.config import Settings
from forecasting.orchestration.pipeline import finalize, prepare_run, publish, train_shard
from forecasting.orchestration.run_folder import RunFolder


def run_weekly(settings: Settings, series: Sequence[str] | None = None) -> dict[str, Any]:
    """The CLI's run: every step in order, shards one after another; returns the run summary."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    prepared = prepare_run(settings, series)
    timings["prepare"] = time.perf_counter() - started

    folder = RunFolder(Path(prepared["run_dir"]))
    n_series = len(pd.read_parquet(folder.input("lifecycle"), columns=["unique_id"]))
    started = time.perf_counter()
    with tqdm(total=n_series, desc="series", unit="series", file=sys.stderr, disable=not settings.compute.progress) as bar:
        for shard in prepared["shards"]:
            result = train_shard(prepared["run_dir"], shard, on_series_done=bar.update)
            if result["skipped"]:
                bar.update(result["n_series"])
    timings["train"] = time.perf_counter() - started

    started = time.perf_counter()
    summary = finalize(prepared["run_dir"])
    timings["finalize"] = time.perf_counter() - started
    started = time.perf_counter()
    summary.update(publish(prepared["run_dir"]))
    timings["publish"] = time.perf_counter() - started
    summary["run_dir"] = prepared["run_dir"]
    summary["timings_seconds"] = {k: round(v, 3) for k, v in timings.items()}
    return summary
