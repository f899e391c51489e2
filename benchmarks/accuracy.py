"""Accuracy benchmark: the platform's default against fixed baselines, out of sample, on every dataset.

Each dataset of ../shared/data is cut into a history and held-out periods the platform
never sees: M4 Weekly and M1 (monthly, quarterly) with their official test sets, Walmart
with its last 13 weeks held out (500 store-departments that cover all 143 weeks, drawn
with a fixed seed). The platform runs on the history with its embedded defaults (or
``--config``) and nine quantiles 0.1 .. 0.9; its published forecasts are scored on the
held-out periods with ``forecasting.evaluation.losses.score_panel``. Side by side, in
the same run and on the same series:

- ``platform: X``: every candidate's own calibrated forecast from that same run
  (``candidates.parquet``; where X cannot forecast a series, the run's Naive stands in,
  and ``own`` counts the series X forecast itself);
- ``bare X``: plain statsforecast on the same history (expensive models capped like the
  platform's), native intervals, conformal ones (2 windows) for models without them;
- ``bare Median3``: the quantile-wise median of bare AutoETS, AutoTheta and AutoCES;
- for M4, the published reference forecasts (Naive2, SES, seasonal naive) and OWA.

Scores: WQL (pooled), MASE (m = 1 for weekly data, the season length otherwise), sMAPE,
coverage of [p10, p90] overall and by horizon (nominal 80 %), and wall times. The
machine's load average is printed before and after each platform run.

Usage (from the project root)::

    .venv/bin/python benchmarks/accuracy.py                         # every dataset, about an hour
    .venv/bin/python benchmarks/accuracy.py --datasets m1-quarterly --series 60
    .venv/bin/python benchmarks/accuracy.py --output /tmp/acc --combine   # print a finished run's tables

``--output DIR`` keeps the runs and writes DIR/accuracy.json (each platform run starts from
an empty folder, so its wall time is always measured).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:  # runnable as a plain script from anywhere
    sys.path.insert(0, str(PROJECT_ROOT))

from forecasting.config import load_settings  # noqa: E402
from forecasting.config.loader import deep_merge  # noqa: E402
from forecasting.data.contract import quantile_label  # noqa: E402
from forecasting.evaluation.losses import owa, score_panel  # noqa: E402

SHARED = PROJECT_ROOT.parent / "shared" / "data"
QUANTILES = [round(0.1 * i, 1) for i in range(1, 10)]
LABELS = [quantile_label(q) for q in QUANTILES]
MEDIAN3 = ("AutoETS", "AutoTheta", "AutoCES")
NAIVE2_SMAPE, NAIVE2_MASE = 9.161, 2.777  # M4 evaluation sheet, Weekly
WALMART_SERIES, WALMART_SEED = 500, 12345


@dataclass(frozen=True)
class Dataset:
    name: str
    freq: str
    horizon: int
    season_length: int
    mase_lag: int  # 1 for weekly data (M4, Chronos, fev), the season length otherwise
    load: Callable[[Path], tuple[pd.DataFrame, pd.DataFrame]]


def _official(folder: str) -> Callable[[Path], tuple[pd.DataFrame, pd.DataFrame]]:
    def load(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
        return pd.read_parquet(root / folder / "train.parquet"), pd.read_parquet(root / folder / "test.parquet")
    return load


def _walmart(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """500 store-departments with all 143 weeks (fixed seed); the last 13 weeks held out."""
    sales = pd.read_parquet(root / "walmart" / "sales.parquet", columns=["unique_id", "ds", "y"])
    counts = sales.groupby("unique_id").size()
    complete = sorted(counts[counts == counts.max()].index)
    chosen = set(np.random.default_rng(WALMART_SEED).choice(complete, WALMART_SERIES, replace=False))
    sales = sales[sales["unique_id"].isin(chosen)].sort_values(["unique_id", "ds"]).reset_index(drop=True)
    weeks = np.sort(sales["ds"].unique())
    held_out = sales["ds"] >= weeks[-13]
    return sales[~held_out].reset_index(drop=True), sales[held_out].reset_index(drop=True)


DATASETS = {
    "m4-weekly": Dataset("m4-weekly", "W-SUN", 13, 52, 1, _official("m4-weekly")),
    "m1-monthly": Dataset("m1-monthly", "MS", 18, 12, 12, _official("m1-monthly")),
    "m1-quarterly": Dataset("m1-quarterly", "QS", 8, 4, 4, _official("m1-quarterly")),
    "walmart": Dataset("walmart", "W-FRI", 13, 52, 1, _walmart),
}


# --------------------------------------------------------------------------- data
def pick_series(ids: list[str], n: int | None) -> list[str]:
    """``n`` series evenly spaced over the sorted ids (deterministic), or all of them."""
    if n is None or n >= len(ids):
        return ids
    return [ids[i] for i in np.unique(np.linspace(0, len(ids) - 1, n).round().astype(int))]


def load_dataset(dataset: Dataset, root: Path, n: int | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    train, test = dataset.load(root)
    keep = set(pick_series(sorted(map(str, test["unique_id"].unique())), n))
    train = train[train["unique_id"].astype(str).isin(keep)].sort_values(["unique_id", "ds"]).reset_index(drop=True)
    test = test[test["unique_id"].astype(str).isin(keep)].sort_values(["unique_id", "ds"]).reset_index(drop=True)
    test["step"] = test.groupby("unique_id").cumcount() + 1
    return train, test


# --------------------------------------------------------------------------- scoring
def score(dataset: Dataset, train: pd.DataFrame, test: pd.DataFrame, forecasts: pd.DataFrame) -> dict[str, Any]:
    """score_panel plus coverage of [p10, p90] by horizon step."""
    result = score_panel(train, test, forecasts, QUANTILES, "p50", seasonality=dataset.mase_lag)
    merged = test[["unique_id", "ds", "y", "step"]].merge(forecasts[["unique_id", "ds", "p10", "p90"]], on=["unique_id", "ds"])
    inside = (merged["y"] >= merged["p10"]) & (merged["y"] <= merged["p90"])
    result["coverage_by_step"] = inside.groupby(merged["step"]).mean().round(3).tolist()
    return result


def _sorted_quantiles(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame[LABELS] = np.sort(frame[LABELS].to_numpy(dtype=float), axis=1)
    return frame


# --------------------------------------------------------------------------- platform
def run_platform(dataset: Dataset, train: pd.DataFrame, test: pd.DataFrame, config: Path | None,
                 executor: str | None, folder: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The default run and, from its candidates.parquet, every candidate's own calibrated forecast."""
    from forecasting.orchestration.local import run_weekly

    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    data = folder / "history.parquet"
    train.to_parquet(data, index=False)
    overrides: dict[str, Any] = {
        "data": {"path": str(data), "id_col": "unique_id", "time_col": "ds", "target_col": "y"},
        "forecast": {"freq": dataset.freq, "horizon": dataset.horizon, "season_length": dataset.season_length,
                     "quantiles": QUANTILES, "as_of": str(pd.Timestamp(train["ds"].max()).date())},
        "output": {"root": str(folder / "output")},
    }
    if executor:
        overrides["compute"] = {"executor": executor}
    settings = load_settings(config, deep_merge({}, overrides))
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    summary = run_weekly(settings)
    wall = time.perf_counter() - started
    published = pd.read_parquet(summary["published"])
    published = published[published["run_id"] == summary["run_id"]]
    missing = sorted(set(test["unique_id"]) - set(published["unique_id"]))
    if missing:
        raise RuntimeError(f"{dataset.name}: {len(missing)} series not published, e.g. {missing[:5]}")
    run_dir = Path(summary["run_dir"])
    rows = [{"method": "platform default", **score(dataset, train, test, published), "wall_seconds": round(wall, 1)}]
    candidates = pd.read_parquet(run_dir / "candidates.parquet")
    dates = published[["unique_id", "horizon", "ds"]]
    stand_in = candidates[candidates["candidate"] == "Naive"]
    for label, part in candidates.groupby("candidate", sort=False):
        own = part["unique_id"].nunique()
        others = stand_in[~stand_in["unique_id"].isin(set(part["unique_id"]))]
        frame = pd.concat([part, others]).merge(dates, on=["unique_id", "horizon"])
        if frame["unique_id"].nunique() < test["unique_id"].nunique():
            continue
        rows.append({"method": f"platform: {label}", **score(dataset, train, test, frame),
                     "note": f"own {own}/{test['unique_id'].nunique()}"})
    info = {
        "run_dir": str(run_dir), "wall_seconds": round(wall, 1), "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2), "counts": summary.get("counts", {}),
        "winner_mix": summary.get("winner_mix", {}), "out_of_sample": summary.get("out_of_sample", {}),
        "backtest_loss": summary.get("backtest_loss", {}), "timings": summary.get("timings_seconds", {}),
        "backtest_coverage": summary.get("calibration", {}).get("coverage_by_candidate", {}).get("Ensemble"),
    }
    return rows, info


# --------------------------------------------------------------------------- bare statsforecast
def bare_forecasts(dataset: Dataset, train: pd.DataFrame, names: list[str]) -> tuple[dict[str, pd.DataFrame], float]:
    """Plain statsforecast on the whole history: every model's nine quantiles, and the wall time."""
    from statsforecast import StatsForecast
    from statsforecast.utils import ConformalIntervals

    from forecasting.config.seasonality import season_lengths
    from forecasting.models.catalog import model_class
    from forecasting.training.plan import MIN_HISTORY_CAP

    levels = [20, 40, 60, 80]
    cap = max(MIN_HISTORY_CAP, 4 * max(dataset.season_length, *season_lengths(dataset.freq)))
    out: dict[str, pd.DataFrame] = {}
    started = time.perf_counter()
    for name in names:
        cls = model_class(name)
        if cls.get_tag("multiple_seasonalities"):
            continue
        params = {**cls._defaults()} if hasattr(cls, "_defaults") else {}
        if "season_length" in params or "season_length" in cls._param_names():
            params["season_length"] = dataset.season_length
        kwargs = {} if cls.get_tag("native_quantiles") else {"prediction_intervals": ConformalIntervals(h=dataset.horizon, n_windows=2)}
        model = cls.sf_class(**params, **kwargs)
        history = train.groupby("unique_id", sort=False).tail(cap) if cls.get_tag("expensive") else train
        sf = StatsForecast(models=[model], freq=dataset.freq, n_jobs=2)
        try:
            predicted = sf.forecast(df=history, h=dataset.horizon, level=levels)
        except Exception as exc:  # a baseline that cannot run on this data is reported, not fatal
            print(f"  bare {name}: {type(exc).__name__}: {exc}"[:300], file=sys.stderr)
            continue
        alias = repr(model)
        frame = predicted[["unique_id", "ds"]].copy()
        for q, label in zip(QUANTILES, LABELS, strict=True):
            level = int(round(abs(1 - 2 * q) * 100))
            column = alias if q == 0.5 else f"{alias}-{'lo' if q < 0.5 else 'hi'}-{level}"
            frame[label] = predicted[column].to_numpy()
        out[name] = _sorted_quantiles(frame)
    return out, time.perf_counter() - started


def bare_rows(dataset: Dataset, train: pd.DataFrame, test: pd.DataFrame, names: list[str]) -> tuple[list[dict[str, Any]], float]:
    forecasts, wall = bare_forecasts(dataset, train, names)
    rows = []
    for name, frame in forecasts.items():
        if frame[LABELS].isna().any().any() or frame["unique_id"].nunique() < test["unique_id"].nunique():
            rows.append({"method": f"bare {name}", "note": "no forecast for every series"})
            continue
        rows.append({"method": f"bare {name}", **score(dataset, train, test, frame)})
    if all(name in forecasts for name in MEDIAN3):
        stacked = np.stack([forecasts[name].sort_values(["unique_id", "ds"])[LABELS].to_numpy() for name in MEDIAN3])
        median = forecasts[MEDIAN3[0]].sort_values(["unique_id", "ds"])[["unique_id", "ds"]].copy()
        median[LABELS] = np.median(stacked, axis=0)
        rows.append({"method": "bare Median3 (AutoETS, AutoTheta, AutoCES)", **score(dataset, train, test, _sorted_quantiles(median))})
    return rows, wall


def m4_reference_rows(dataset: Dataset, root: Path, train: pd.DataFrame, test: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for name in ("Naive2", "SES", "sNaive"):
        reference = pd.read_parquet(root / "m4-weekly" / f"reference_{name}.parquet")
        point = test[["unique_id", "ds", "step"]].merge(reference, on=["unique_id", "step"], how="left")
        frame = point[["unique_id", "ds"]].copy()
        for label in LABELS:
            frame[label] = point[name].to_numpy()
        rows.append({"method": f"M4 reference {name} (point as every quantile)", **score(dataset, train, test, frame)})
    return rows


# --------------------------------------------------------------------------- output
_COLUMNS = [("method", "method", "{}"), ("wql", "WQL", "{:.4f}"), ("mase", "MASE", "{:.3f}"), ("smape", "sMAPE", "{:.2f}"),
            ("owa", "OWA", "{:.3f}"), ("coverage", "cov80", "{:.3f}"), ("wall_seconds", "wall s", "{:.0f}"), ("note", "note", "{}")]


def format_table(title: str, rows: list[dict[str, Any]]) -> str:
    def cell(row: dict[str, Any], key: str, fmt: str) -> str:
        value = row.get(key)
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return "" if key == "note" else "-"
        return fmt.format(value)

    cells = [[header for _, header, _ in _COLUMNS]] + [[cell(r, k, f) for k, _, f in _COLUMNS] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(_COLUMNS))]
    lines = [title]
    for n, line in enumerate(cells):
        lines.append("  ".join(c.ljust(w) if i in (0, len(widths) - 1) else c.rjust(w)
                               for i, (c, w) in enumerate(zip(line, widths, strict=True))).rstrip())
        if n == 0:
            lines.append("-" * len(lines[-1]))
    return "\n".join(lines)


def print_dataset(result: dict[str, Any]) -> None:
    info = result["platform_info"]
    print()
    print(format_table(f"{result['dataset']}: {result['n_series']} series, horizon {result['horizon']}, "
                       f"MASE lag {result['mase_lag']}, quantiles 0.1..0.9", result["rows"]))
    default = next(r for r in result["rows"] if r["method"] == "platform default")
    print(f"coverage of [p10, p90] by horizon step (platform default): {default['coverage_by_step']}")
    print(f"platform: wall {info['wall_seconds']} s (load average {info['load_before']} before, {info['load_after']} "
          f"after; bare statsforecast {result['bare_wall_seconds']:.0f} s); status {info['counts']}; "
          f"models {info['winner_mix']}")
    estimate = info.get("out_of_sample") or {}
    if estimate:
        loss = estimate["loss"]
        print(f"out-of-sample estimate from the backtest (latest window, chosen on earlier ones; scaled quantile loss): "
              f"selected {loss.get('selected', float('nan')):.3f}, ensemble {loss.get('Ensemble') or float('nan'):.3f}, "
              f"naive {loss.get('Naive') or float('nan'):.3f}; in-sample winners "
              f"{(info.get('backtest_loss') or {}).get('winner_mean_scaled_quantile_loss', float('nan')):.3f}")


def run_dataset(dataset: Dataset, args: argparse.Namespace, output: Path) -> dict[str, Any]:
    train, test = load_dataset(dataset, args.data_root, args.series)
    print(f"[{time.strftime('%H:%M:%S')}] {dataset.name}: {train['unique_id'].nunique()} series ...", file=sys.stderr, flush=True)
    rows, info = run_platform(dataset, train, test, args.config, args.executor, output / dataset.name)
    base = load_settings(args.config, {})
    names = [c.name for c in base.models.candidates if c.name in _builtin_names()]
    bare, bare_wall = ([], 0.0) if args.skip_bare else bare_rows(dataset, train, test, names)
    rows += bare
    if dataset.name == "m4-weekly":
        rows += m4_reference_rows(dataset, args.data_root, train, test)
        for row in rows:
            if "smape" in row:
                row["owa"] = owa(row["smape"], row["mase"], NAIVE2_SMAPE, NAIVE2_MASE)
    print(f"[{time.strftime('%H:%M:%S')}] {dataset.name}: platform {info['wall_seconds']} s, bare {bare_wall:.0f} s",
          file=sys.stderr, flush=True)
    return {"dataset": dataset.name, "n_series": int(test["unique_id"].nunique()), "horizon": dataset.horizon,
            "mase_lag": dataset.mase_lag, "rows": rows, "platform_info": info, "bare_wall_seconds": bare_wall}


def _builtin_names() -> set[str]:
    from forecasting.models.statsforecast_models import BUILTIN_MODELS

    return set(BUILTIN_MODELS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated, of {', '.join(DATASETS)}")
    parser.add_argument("--series", type=int, default=None, help="N series per dataset, evenly spaced by id (default all)")
    parser.add_argument("--config", type=Path, default=None, help="platform YAML (default: the embedded defaults)")
    parser.add_argument("--executor", default=None, help="override compute.executor (serial or dask)")
    parser.add_argument("--output", type=Path, default=None, help="folder for the runs and accuracy.json")
    parser.add_argument("--data-root", type=Path, default=SHARED, help="the shared data folder")
    parser.add_argument("--skip-bare", action="store_true", help="no bare statsforecast baselines")
    parser.add_argument("--combine", action="store_true", help="print the tables of OUTPUT/accuracy.json; run nothing")
    args = parser.parse_args(argv)
    output = (args.output or Path(tempfile.mkdtemp(prefix="accuracy-"))).resolve()
    path = output / "accuracy.json"
    if args.combine:
        for result in json.loads(path.read_text())["datasets"]:
            print_dataset(result)
        return 0
    results = []
    try:
        for name in [n.strip() for n in args.datasets.split(",") if n.strip()]:
            results.append(run_dataset(DATASETS[name], args, output))
            output.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"datasets": results, "config": str(args.config) if args.config else None},
                                       indent=1, default=str))
    finally:
        from forecasting.orchestration.executors import shutdown_embedded_cluster

        shutdown_embedded_cluster()
    for result in results:
        print_dataset(result)
    print(f"\nfigures: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
