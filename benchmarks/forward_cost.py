"""What fitting once and moving forward saves, per expensive candidate, on demo series.

For the first ``--series`` smooth-kind series of ``generate_demo_panel(60, 156)``: CPU time
per series of the raw forecasts at every backtest origin (``training.backtest.candidate_forecasts``
with ``move_forward`` on and off, the future left out) and of the fresh fit for the future;
then, per call, the fit at the earliest cutoff, each ``forward`` to a later cutoff, and how many
moved forecasts fail the sanity check (and are refitted in a run). CPU time of this process;
the load average is printed.

Usage::

    .venv/bin/python benchmarks/forward_cost.py [--series 12] [--models AutoETS,AutoTheta,AutoCES]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

QUANTILES = (0.1, 0.5, 0.9)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=12)
    parser.add_argument("--models", default="AutoETS,AutoTheta,AutoCES")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")

    from forecasting.config import load_settings
    from forecasting.data.demo import generate_demo_panel
    from forecasting.models.catalog import build_model
    from forecasting.training import backtest
    from forecasting.training.batch import series_arrays
    from forecasting.training.plan import TrainingPlan

    settings = load_settings()
    plan = TrainingPlan.from_settings(settings)
    panel, kinds = generate_demo_panel(n_series=60, n_periods=156, seed=7, return_kinds=True)
    smooth = set(kinds.loc[kinds["kind"].isin(["smooth", "seasonal", "trend", "level_shift"]), "unique_id"])
    arrays = series_arrays(panel.sort_values(["unique_id", "ds"], kind="stable"))
    ys = [y for uid, (_, y) in arrays.items() if uid in smooth][: args.series]
    print(f"{len(ys)} series of lengths {sorted({y.size for y in ys})}; load average {os.getloadavg()[0]:.1f}")
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        model = build_model(name, {}, settings.season_length)
        for move_forward in (True, False):
            started = time.process_time()
            for y in ys:
                ends = [w.train_end for w in plan.windows(y.size)]
                backtest.candidate_forecasts(model, y, ends, plan.horizon, QUANTILES, plan.history_cap, move_forward,
                                             600.0, name, future=False)
            per_series = (time.process_time() - started) / len(ys)
            print(f"{name:<10} origins, move_forward={move_forward!s:<5}: {1000 * per_series:7.0f} ms CPU per series")
        started = time.process_time()
        for y in ys:
            backtest.candidate_forecasts(model, y, [], plan.horizon, QUANTILES, plan.history_cap, True, 600.0, name)
        print(f"{name:<10} future fit: {1000 * (time.process_time() - started) / len(ys):7.0f} ms CPU per series")
        fit = forward = 0.0
        n_forward = insane = 0
        for y in ys:
            ends = [w.train_end for w in plan.windows(y.size)]
            started = time.process_time()
            fitted = model.clone().fit(y[: ends[0]][-plan.history_cap :])
            fit += time.process_time() - started
            for end in ends[1:]:
                history = y[:end][-plan.history_cap :]
                started = time.process_time()
                moved = fitted.forward(history, plan.horizon, QUANTILES)
                forward += time.process_time() - started
                n_forward += 1
                insane += not backtest._sane(backtest._as_quantiles(model, moved, QUANTILES, plan.horizon), history)
        print(f"{name:<10} fit at the earliest cutoff {1000 * fit / len(ys):6.0f} ms, forward {1000 * forward / max(n_forward, 1):6.0f} ms "
              f"per call; moved forecasts refitted (not sane) {insane}/{n_forward}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
