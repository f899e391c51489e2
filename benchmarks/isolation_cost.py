"""Isolation cost: the example plug-in fitted in-process vs in child processes, per series.

The same ~200 demo series (horizon 13, season 52, the default backtest windows,
calibrated quantiles) are trained by ``train_batch`` with ``SeasonalMovingAverage`` as the only
candidate, batch by batch as a shard does: once in this process, and once isolated
(one child process per batch, the production path) at a few batch sizes. The cost of
isolation per series is (isolated - in-process) / series; the start of an empty child
is timed too. Figures are printed; nothing is asserted (the machine may be shared).

Usage (from the project root, after ``make setup``)::

    .venv/bin/python benchmarks/isolation_cost.py --series 200 --batch-sizes 5,25
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

import pandas as pd

from forecasting.config import Settings
from forecasting.data.demo import generate_demo_panel
from forecasting.data.lifecycle import classify_lifecycle
from forecasting.data.validation import validate_history
from forecasting.models.catalog import build_model
from forecasting.models.sandbox import sandboxed
from forecasting.orchestration.steps.prepare import min_backtest_length
from forecasting.training.plan import Candidate, IsolationLimits, TrainingPlan
from forecasting.training.selection_step import train_batch

MODEL = "SeasonalMovingAverage"


def _inputs(n_series: int, settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    raw = generate_demo_panel(n_series=n_series, seed=11)
    as_of = pd.Timestamp(raw["ds"].max())
    history = validate_history(raw, settings.forecast.freq, as_of, settings.validation).history
    lifecycle = classify_lifecycle(history, as_of, settings.forecast.freq, min_backtest_length(settings), settings.lifecycle)
    return history.sort_values(["unique_id", "ds"], ignore_index=True), lifecycle


def _plan(settings: Settings, isolation: IsolationLimits | None) -> TrainingPlan:
    model = build_model(MODEL, {}, settings.season_length)
    fallback = Candidate("Naive", build_model("Naive", {}, settings.season_length))  # for series too short for it
    return TrainingPlan.from_settings(settings, candidates=(Candidate(MODEL, model, isolation),), fallbacks=(fallback,))


def _train(history: pd.DataFrame, lifecycle: pd.DataFrame, plan: TrainingPlan, batch_size: int, freq: str) -> tuple[float, int]:
    ids = sorted(history["unique_id"].unique())
    started = time.perf_counter()
    ok = 0
    for start in range(0, len(ids), batch_size):
        batch = ids[start : start + batch_size]
        result = train_batch(history[history["unique_id"].isin(batch)], lifecycle[lifecycle["unique_id"].isin(batch)], plan, freq)
        ok += int((result.ledger["model"] == MODEL).sum())
    return time.perf_counter() - started, ok


def _child_start_seconds(repeat: int = 5) -> float:
    """Start-up of an empty sandboxed child: the supervisor, the interpreter, numpy and the model layer."""
    command = [sys.executable, "-c", "import forecasting.training.fitting; print('ready')"]
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        with sandboxed(command, 2048) as child:
            child.next_line(120.0)
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=200)
    parser.add_argument("--batch-sizes", default="5,25", help="series per batch (one child per batch) to time isolated")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    settings = Settings()
    history, lifecycle = _inputs(args.series, settings)
    n = int(lifecycle["lifecycle"].ne("ended").sum())
    freq = settings.forecast.freq
    print(f"{MODEL}, {n} series trained ({len(lifecycle)} in the panel), horizon {settings.forecast.horizon}, "
          f"season {settings.season_length}, {settings.backtest.n_windows} backtest windows")

    in_process, ok = _train(history, lifecycle, _plan(settings, None), 5, freq)
    print(f"in-process            {in_process:7.2f} s  {in_process / n * 1000:7.1f} ms/series  ({ok} forecast by {MODEL})")
    limits = IsolationLimits(settings.plugins.timeout_seconds, settings.plugins.memory_limit_mb)
    for size in (int(s) for s in args.batch_sizes.split(",")):
        isolated, ok = _train(history, lifecycle, _plan(settings, limits), size, freq)
        extra = (isolated - in_process) / n * 1000
        print(f"isolated, batch {size:<4}  {isolated:7.2f} s  {isolated / n * 1000:7.1f} ms/series  "
              f"(+{extra:.1f} ms/series for isolation; {ok} forecast by {MODEL})")
    print(f"empty child start-up  {_child_start_seconds():7.3f} s (interpreter + numpy + model layer)")


if __name__ == "__main__":
    main()
