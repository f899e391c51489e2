"""Walmart benchmark: per-series selection against single candidates and naive, with and without covariates.

The platform runs on Walmart store x department weekly sales (../shared/data/walmart,
weeks ending on Fridays: W-FRI) with the last 13 weeks held out: the history ends
13 weeks before the data does, and the forecasts of those 13 weeks (nine quantiles
0.1 .. 0.9) are scored against them with ``forecasting.evaluation.losses.score_panel``
(WQL pooled, MASE with m = 1, coverage of p10 .. p90). Scored series: those with all
13 held-out weeks that every run published (ended series publish nothing).

Runs (each timed):
- ``selection``: per-series selection over the candidates (default: the embedded
  defaults plus LightGBM) without covariates, and ``selection+covariates`` with
  features.csv (known in advance: IsHoliday, MarkDown1-5; past-only, shifted by the
  horizon: Temperature, Fuel_Price, CPI, Unemployment) and stores.csv (Type, Size)
  as static features, keyed by store (id_pattern ``^(?P<Store>\\d+)_``);
- ``--singles A,B``: each of those candidates alone (no ensemble), LightGBM also
  with covariates;
- naive (last value) and seasonal naive (52 weeks back), computed here.

Usage (from the project root)::

    .venv/bin/python benchmarks/walmart.py --series 300 --singles AutoETS,LightGBM --output /tmp/walmart-bench
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:  # runnable as a plain script from anywhere
    sys.path.insert(0, str(PROJECT_ROOT))

from forecasting.config import load_settings  # noqa: E402
from forecasting.config.loader import deep_merge  # noqa: E402
from forecasting.config.settings import _default_candidates  # noqa: E402
from forecasting.data.contract import quantile_label  # noqa: E402
from forecasting.evaluation.losses import score_panel  # noqa: E402
from forecasting.orchestration.local import run_weekly  # noqa: E402

DEFAULT_DATA_DIR = PROJECT_ROOT.parent / "shared" / "data" / "walmart"
HORIZON = 13
QUANTILES = [round(0.1 * i, 1) for i in range(1, 10)]


def covariate_settings(data_dir: Path) -> dict[str, Any]:
    return {
        "path": str(data_dir / "features.csv"),
        "time_col": "Date",
        "keys": ["Store"],
        "id_pattern": r"^(?P<Store>\d+)_",
        "known_in_advance": ["IsHoliday", "MarkDown1", "MarkDown2", "MarkDown3", "MarkDown4", "MarkDown5"],
        "past_only": ["Temperature", "Fuel_Price", "CPI", "Unemployment"],
        "static_path": str(data_dir / "stores.csv"),
        "static": ["Type", "Size"],
    }


def load(data_dir: Path, n_series: int | None) -> tuple[pd.DataFrame, pd.DataFrame, pd.Timestamp]:
    """Training history and the held-out last 13 weeks (long frames), and the forecast origin."""
    sales = pd.read_parquet(data_dir / "sales.parquet", columns=["unique_id", "ds", "y"])
    sales["ds"] = pd.to_datetime(sales["ds"]).astype("datetime64[ns]")
    ids = sorted(sales["unique_id"].unique(), key=lambda s: tuple(int(p) for p in s.split("_")))
    if n_series is not None and n_series < len(ids):
        positions = np.unique(np.linspace(0, len(ids) - 1, n_series).round().astype(int))
        sales = sales[sales["unique_id"].isin({ids[i] for i in positions})]
    end = sales["ds"].max()
    origin = end - pd.Timedelta(weeks=HORIZON)
    return sales[sales["ds"] <= origin].reset_index(drop=True), sales[sales["ds"] > origin].reset_index(drop=True), origin


def naive_forecasts(train: pd.DataFrame, test: pd.DataFrame, lag: int) -> pd.DataFrame:
    """Last value (lag 1) or the value ``lag`` weeks before each test week, as every quantile."""
    history = train.set_index(["unique_id", "ds"])["y"]
    out = test[["unique_id", "ds"]].copy()
    if lag == 1:
        last = train.sort_values("ds").groupby("unique_id")["y"].last()
        point = out["unique_id"].map(last)
    else:
        keys = pd.MultiIndex.from_arrays([out["unique_id"], out["ds"] - pd.Timedelta(weeks=lag)])
        point = pd.Series(history.reindex(keys).to_numpy(), index=out.index)
        last = train.sort_values("ds").groupby("unique_id")["y"].last()
        point = point.fillna(out["unique_id"].map(last))
    for q in QUANTILES:
        out[quantile_label(q)] = point.to_numpy(dtype=float)
    return out


def run(label: str, overrides: dict[str, Any], config: Path | None, root: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    if root.exists():  # the benchmark's own scratch: never score a stale or checkpointed run
        shutil.rmtree(root)
    settings = load_settings(config, deep_merge(overrides, {"output": {"root": str(root)}}))
    print(f"[{time.strftime('%H:%M:%S')}] running {label} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    summary = run_weekly(settings)
    wall = time.perf_counter() - started
    print(f"[{time.strftime('%H:%M:%S')}] {label}: {wall:.0f} s", file=sys.stderr, flush=True)
    published = pd.read_parquet(summary["published"])
    published = published[published["run_id"] == summary["run_id"]]
    info = {"wall_seconds": round(wall, 1), "counts": summary.get("counts", {}), "winner_mix": summary.get("winner_mix", {})}
    if "global_models" in summary:
        info["global_models"] = summary["global_models"]
    return published, info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--series", type=int, default=None, help="N series evenly spaced over the sorted ids (default all)")
    parser.add_argument("--config", type=Path, default=None, help="platform YAML (default: embedded defaults + LightGBM)")
    parser.add_argument("--singles", default="", help="comma-separated candidates to also run alone")
    parser.add_argument("--skip-selection", action="store_true", help="run only the --singles")
    parser.add_argument("--tuning-trials", type=int, default=0, help="tuning.n_trials of the runs")
    parser.add_argument("--n-shards", type=int, default=2, help="compute.n_shards (a global model sees one shard's series)")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)

    data_dir = args.data_dir.resolve()
    output = (args.output or Path(tempfile.mkdtemp(prefix="walmart-bench-"))).resolve()
    output.mkdir(parents=True, exist_ok=True)
    train, test, origin = load(data_dir, args.series)
    train_path = output / "train.parquet"
    train.to_parquet(train_path, index=False)

    candidates = [c.model_dump() for c in _default_candidates()] + [{"name": "LightGBM", "params": {}, "alias": None}]
    base: dict[str, Any] = {
        "data": {"path": str(train_path)},
        "forecast": {"freq": "W-FRI", "horizon": HORIZON, "season_length": 52, "quantiles": QUANTILES,
                     "as_of": origin.strftime("%Y-%m-%d")},
        "tuning": {"n_trials": args.tuning_trials},
        "compute": {"n_shards": args.n_shards},
    }
    if args.config is None:
        base["models"] = {"candidates": candidates}
    with_x = {"covariates": covariate_settings(data_dir)}
    runs: list[tuple[str, dict[str, Any]]] = []
    if not args.skip_selection:
        runs = [("selection", base), ("selection+covariates", deep_merge(base, with_x))]
    configured = load_settings(args.config, base).models.candidates
    for name in [s.strip() for s in args.singles.split(",") if s.strip()]:
        single = [c.model_dump() for c in configured if c.label == name]
        if not single:
            raise SystemExit(f"--singles: {name} is not a configured candidate")
        alone = deep_merge(base, {"models": {"candidates": single}, "ensemble": {"enabled": False}})
        runs.append((f"only {name}", alone))
        if name == "LightGBM":
            runs.append((f"only {name}+covariates", deep_merge(alone, with_x)))

    results: dict[str, tuple[pd.DataFrame, dict[str, Any]]] = {}
    try:
        for label, overrides in runs:
            results[label] = run(label, overrides, args.config, output / "platform" / label.replace(" ", "_"))
    finally:
        from forecasting.orchestration.executors import shutdown_embedded_cluster

        shutdown_embedded_cluster()

    # Score the series every run published, with all 13 held-out weeks.
    full = test.groupby("unique_id")["ds"].count()
    scored = set(full[full == HORIZON].index)
    for published, _ in results.values():
        scored &= set(published["unique_id"])
    test_scored = test[test["unique_id"].isin(scored)]
    train_scored = train[train["unique_id"].isin(scored)]
    rows = []
    for label, (published, info) in results.items():
        forecasts = published[published["unique_id"].isin(scored)]
        rows.append({"method": f"platform: {label}", **score_panel(train_scored, test_scored, forecasts, QUANTILES), **info})
    for label, lag in (("naive (last value)", 1), ("seasonal naive (52 weeks)", 52)):
        rows.append({"method": label, **score_panel(train_scored, test_scored, naive_forecasts(train_scored, test_scored, lag), QUANTILES)})

    print(f"\nWalmart, {len(scored)} series scored (of {train['unique_id'].nunique()}), W-FRI, horizon 13, "
          f"origin {origin:%Y-%m-%d}, quantiles 0.1..0.9, MASE m=1")
    print(f"{'method':42s} {'WQL':>7s} {'MASE':>7s} {'cov80':>6s} {'wall s':>7s}")
    for row in rows:
        wall = row.get("wall_seconds")
        print(f"{row['method']:42s} {row['wql']:7.4f} {row['mase']:7.3f} {row['coverage']:6.3f} {wall if wall is not None else '-':>7}")
    for row in rows:
        if row.get("winner_mix"):
            print(f"{row['method']}: winners {row['winner_mix']}")
    path = output / "walmart.json"
    path.write_text(json.dumps({"n_series": len(scored), "origin": str(origin), "rows": rows}, indent=1, default=str))
    print(f"\nfigures: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
