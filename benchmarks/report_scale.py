"""Report scale: generation time and size of the run report for a large run.

Builds synthetic finished run folders (``tests/support/synthetic_run.py``: the
real prepare and finalize around synthetic training results, default candidates, two
backtest windows, horizon 13, 156 weeks of history) at a baseline size and at the target
size, then times ``write_report`` (HTML + Prometheus metrics) on each and prints the time,
the file sizes and the ratios target / baseline. Nothing is asserted (the machine may be
shared).

Usage (from the project root, after ``make setup``)::

    .venv/bin/python benchmarks/report_scale.py --series 10000 --baseline 1000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

TESTS = Path(__file__).resolve().parents[1] / "tests"
if str(TESTS) not in sys.path:  # the synthetic run folder is test support, not part of the package
    sys.path.insert(0, str(TESTS))


def measure(root: Path, n_series: int) -> dict[str, float]:
    from support.synthetic_run import build_synthetic_run

    from forecasting.orchestration.steps.report import write_report

    started = time.perf_counter()
    summary = build_synthetic_run(root, n_series=n_series)
    built = time.perf_counter() - started
    run_dir = Path(summary["run_dir"])
    started = time.perf_counter()
    result = write_report(run_dir)
    seconds = time.perf_counter() - started
    backtest_rows = len(pd.read_parquet(run_dir / "backtest.parquet", columns=["unique_id"]))
    return {
        "series": n_series,
        "backtest_rows": backtest_rows,
        "build_s": built,
        "report_s": seconds,
        "html_kb": Path(result["report"]).stat().st_size / 1024,
        "metrics_kb": Path(result["metrics"]).stat().st_size / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--baseline", type=int, default=1_000)
    parser.add_argument("--output", type=Path, help="keep the run folders here (default: a temporary directory)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = args.output or Path(scratch)
        # Warm up imports (matplotlib, jinja2) so neither measurement pays for them.
        measure(root / "warmup", 30)
        rows = [measure(root / f"n{n}", n) for n in (args.baseline, args.series)]
    table = pd.DataFrame(rows).set_index("series")
    print(table.to_string(float_format=lambda v: f"{v:,.1f}"))
    base, target = rows
    print(
        f"\n{target['series']} vs {base['series']} series ({target['series'] / base['series']:.0f}x): "
        f"report time x{target['report_s'] / base['report_s']:.2f}, HTML size x{target['html_kb'] / base['html_kb']:.2f}"
    )


if __name__ == "__main__":
    main()
