"""Run the whole weekly job from one process: the DAG's steps in its order (prepare with the
snapshot of a dated source, every shard, finalize and register, publish, report), the shards on
Dask or serially. Retention is the DAG's step only: it prunes registry versions as well."""

from __future__ import annotations

import logging
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pandas as pd
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from forecasting.config import Settings
from forecasting.data.contract import ID
from forecasting.orchestration.executors import run_shards
from forecasting.orchestration.run_catalog import Run
from forecasting.orchestration.shards import finished_series
from forecasting.orchestration.stage_times import record_stage_time
from forecasting.orchestration.steps.finalize import finalize_task
from forecasting.orchestration.steps.prepare import prepare
from forecasting.orchestration.steps.publish import publish_task
from forecasting.orchestration.steps.report import report_task


def _write_above(text: str) -> None:
    """Print a line above the progress bar (the bar is redrawn below it)."""
    tqdm.write(text, file=sys.stderr)


@contextmanager
def _above(bar: tqdm, active: bool) -> Iterator[None]:
    """While the bar is shown, this process's warnings and log lines are printed above it."""
    if not active:
        yield
        return
    shown = warnings.showwarning

    def show(message: Any, category: type, filename: str, lineno: int, file: Any = None, line: str | None = None) -> None:
        _write_above(warnings.formatwarning(message, category, filename, lineno, line).rstrip())

    warnings.showwarning = show
    try:
        with logging_redirect_tqdm(loggers=[logging.getLogger()], tqdm_class=tqdm):
            yield
    finally:
        warnings.showwarning = shown


def run_weekly(settings: Settings, series: Sequence[str] | None = None) -> dict[str, Any]:
    """The CLI's run: the DAG's steps in order, retention aside; returns the run summary."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    prepared = prepare(settings, series)  # records its stage time
    run_dir, shards = prepared["run_dir"], prepared["shards"]
    timings["prepare"] = time.perf_counter() - started

    run = Run.load(run_dir)
    n_series = len(pd.read_parquet(run.folder.input("lifecycle"), columns=[ID]))
    started = time.perf_counter()
    progress = settings.compute.progress
    with tqdm(total=n_series, desc="series", unit="series", file=sys.stderr, disable=not progress) as bar, \
            _above(bar, progress):
        bar.update(sum(finished_series(run, shard) for shard in shards))
        run_shards(settings, run, shards, on_series_done=bar.update, notify=_write_above if progress else None)
    timings["train"] = time.perf_counter() - started
    record_stage_time(run_dir, "train", timings["train"])

    started = time.perf_counter()
    summary = finalize_task(run_dir)  # and registration; the task functions record their stage times
    timings["finalize"] = time.perf_counter() - started
    started = time.perf_counter()
    summary.update(publish_task(run_dir))
    timings["publish"] = time.perf_counter() - started
    summary["run_dir"] = run_dir
    started = time.perf_counter()
    summary.update(report_task(run_dir))
    timings["report"] = time.perf_counter() - started
    summary["timings_seconds"] = {k: round(v, 3) for k, v in timings.items()}
    return summary
