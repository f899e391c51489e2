"""Where one shard's time goes, in one process: the raw backtest per candidate and the selection step.

The shard is ``generate_demo_panel(n_series=N, n_periods=156)`` after validation and the
lifecycle classes, cut into batches of ``compute.series_per_batch`` series as the run does;
``backtest_batch`` runs on each batch, then ``select_shard`` once on the whole shard, all in
this process (no Dask, no files). Time is CPU time of this process (``time.process_time``),
which another program's load on the machine inflates far less than wall time; wall time is
printed beside it with the load average.

``--per-series-baselines`` runs the cheap baselines one statsforecast object per series and
origin (the path before ``models.array_baselines``), ``--row-frames`` builds the shard's score
and backtest frames row by row (the construction before the array version): both for
before/after figures of the same code.

Usage::

    .venv/bin/python benchmarks/shard_profile.py --series 250 [--cheap-only] [--per-series-baselines] [--row-frames]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=250)
    parser.add_argument("--cheap-only", action="store_true", help="leave out the expensive candidates (Auto*)")
    parser.add_argument("--per-series-baselines", action="store_true")
    parser.add_argument("--row-frames", action="store_true")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")

    import pandas as pd

    from forecasting.config import load_settings
    from forecasting.data.demo import generate_demo_panel
    from forecasting.data.lifecycle import classify_lifecycle
    from forecasting.data.validation import validate_history
    from forecasting.models import array_baselines
    from forecasting.orchestration.batching import series_per_batch
    from forecasting.orchestration.steps.prepare import min_backtest_length
    from forecasting.training import batch as batch_module
    from forecasting.training import selection_step
    from forecasting.training.batch import BatchRaw, backtest_batch
    from forecasting.training.plan import TrainingPlan
    from forecasting.training.selection_step import select_shard

    settings = load_settings(overrides={"compute": {"progress": False, "executor": "serial"}})
    raw = generate_demo_panel(n_series=args.series, n_periods=156)
    report = validate_history(raw, settings.forecast.freq, pd.Timestamp(raw["ds"].max()), settings.validation)
    history = report.history.sort_values(["unique_id", "ds"], kind="stable").reset_index(drop=True)
    lifecycle = classify_lifecycle(history, pd.Timestamp(history["ds"].max()), settings.forecast.freq,
                                   min_backtest_length(settings), settings.lifecycle)
    plan = TrainingPlan.from_settings(settings)
    if args.cheap_only:
        plan = replace(plan, candidates=tuple(c for c in plan.candidates if not c.expensive))
    if args.per_series_baselines:
        array_baselines.supports = lambda model: False  # type: ignore[assignment]
    if args.row_frames:
        sys.path.insert(0, str(PROJECT_ROOT / "tests" / "unit" / "training"))
        import test_selection_rows as reference

        selection_step._evidence_rows = reference._reference_evidence_rows  # type: ignore[assignment]
        selection_step._forecast_rows = reference._reference_forecast_rows  # type: ignore[assignment]

    per_label: dict[str, list[float]] = {}
    original = batch_module.candidate_forecasts

    def timed(model, y, lengths, *a, **kw):  # type: ignore[no-untyped-def]
        started = time.process_time()
        result = original(model, y, lengths, *a, **kw)
        label = a[5] if len(a) > 5 else kw.get("label", type(model).__name__)
        entry = per_label.setdefault(label, [0.0, 0, 0])
        entry[0] += time.process_time() - started
        entry[1] += 1
        entry[2] += len(result[0])
        return result

    batch_module.candidate_forecasts = timed
    ids = sorted(history["unique_id"].unique())
    size = series_per_batch(plan, len(ids), settings.compute.series_per_batch)
    load_before = os.getloadavg()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    parts = []
    for start in range(0, len(ids), size):
        chunk = set(ids[start : start + size])
        parts.append(backtest_batch(history[history["unique_id"].isin(chunk)].reset_index(drop=True),
                                    lifecycle[lifecycle["unique_id"].isin(chunk)], plan))
    wall1, cpu1 = time.perf_counter(), time.process_time()
    result = select_shard(BatchRaw.concat(parts), history, lifecycle, plan, settings.forecast.freq)
    wall2, cpu2 = time.perf_counter(), time.process_time()
    print(f"series {len(ids)} ({'cheap candidates only' if args.cheap_only else 'default candidates'}; "
          f"baselines {'per series' if args.per_series_baselines else 'vectorised'}; "
          f"frames {'row by row' if args.row_frames else 'arrays'}); load average {load_before[0]:.1f} -> "
          f"{os.getloadavg()[0]:.1f}")
    print(f"  backtest_batch  CPU {cpu1 - cpu0:8.2f} s   wall {wall1 - wall0:8.2f} s   ({len(parts)} batches)")
    print(f"  select_shard    CPU {cpu2 - cpu1:8.2f} s   wall {wall2 - wall1:8.2f} s   "
          f"({len(result.scores)} score rows, {len(result.backtest)} backtest rows)")
    inside = sum(v[0] for v in per_label.values())
    for label, (seconds, calls, forecasts) in sorted(per_label.items(), key=lambda kv: -kv[1][0]):
        print(f"    {label:<18} CPU {seconds:8.2f} s  series {calls:5d}  forecasts {forecasts:6d}  "
              f"{1000 * seconds / max(forecasts, 1):7.2f} ms per forecast")
    print(f"    rest of backtest_batch (vectorised baselines, frames) CPU {cpu1 - cpu0 - inside:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
