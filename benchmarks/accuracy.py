"""Accuracy benchmark: the platform on M4 Weekly, scored beside the published results.

The platform runs on the M4 Weekly training data through ``run_weekly`` (the CLI's
in-process run) with the competition's protocol: weekly W-SUN data, horizon 13, season
length 52, nine quantiles 0.1 .. 0.9, forecast origin 2017-12-31 (the last training week
of every series in ../shared/data/m4-weekly). The published forecasts (p10 .. p90, p50 as
the point forecast) are scored against test.parquet with
``forecasting.evaluation.losses.score_panel``:

- sMAPE and MASE (m = 1) as in the M4 evaluation, OWA against Naive2 with the published
  Naive2 figures (sMAPE 9.161, MASE 2.777) and, in column ``OWA*``, against Naive2
  recomputed from reference_Naive2.parquet on the same series (the two agree on all 359);
- WQL (pooled, Chronos / AutoGluon / gluonts), the scaled quantile loss SQL (fev), and the
  coverage of the p10 .. p90 interval (nominal 80 %).

``--candidates-each`` also runs the platform once per single candidate (that candidate
alone, no ensemble): what always picking that candidate would score. A series on which
the candidate cannot run (not eligible, failed, or stopped by the quality gate) falls
back as in production; the ``own`` column counts the series the candidate forecast itself.

Usage (from the project root)::

    .venv/bin/python benchmarks/accuracy.py --series 60
    .venv/bin/python benchmarks/accuracy.py --candidates-each --output /tmp/m4-bench
    .venv/bin/python benchmarks/accuracy.py --config /tmp/m4_variant.yaml

``--output DIR`` keeps each run's platform folder under DIR/platform/<label> (emptied before
the run, so a run never reuses stale checkpoints and its wall time is always measured);
without it everything goes to a fresh temporary directory. The figures are written to
DIR/accuracy.json. Runs can be split over processes (for example the selection in one,
``--skip-selection --candidates-each`` in another, with different --output folders) and
their tables merged afterwards with ``--combine A/accuracy.json B/accuracy.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
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
from forecasting.orchestration.local import run_weekly  # noqa: E402

DEFAULT_DATA_DIR = PROJECT_ROOT.parent / "shared" / "data" / "m4-weekly"
QUANTILES = [round(0.1 * i, 1) for i in range(1, 10)]
PROTOCOL: dict[str, Any] = {
    "freq": "W-SUN",
    "horizon": 13,
    "season_length": 52,
    "quantiles": QUANTILES,
    "as_of": "2017-12-31",
}
NAIVE2_SMAPE, NAIVE2_MASE = 9.161, 2.777  # the M4 evaluation sheet, Weekly

# Published figures on all 359 series (../shared/data/README.md). None = not published.
PUBLISHED: list[dict[str, Any]] = [
    {"method": "Naive2 (M4, OWA reference)", "smape": 9.161, "mase": 2.777, "owa": 1.000},
    {"method": "SES (M4)", "smape": 9.012, "mase": 2.685, "owa": 0.975},
    {"method": "Theta (M4)", "smape": 9.093, "mase": 2.637, "owa": 0.971},
    {"method": "ES-RNN, Smyl (M4 winner)", "smape": 7.817, "mase": 2.356, "owa": 0.851},
    {"method": "FFORMA (M4 2nd)", "smape": 7.625, "mase": 2.108, "owa": 0.796},
    {"method": "Forecast Pro (best weekly OWA)", "smape": 6.582, "mase": 2.107, "owa": 0.739},
    {"method": "statsforecast AutoARIMA", "mase": 2.34},
    {"method": "statsforecast AutoETS", "mase": 2.55},
    {"method": "seasonal naive (Chronos eval)", "mase": 2.7773, "wql": 0.0634},
    {"method": "chronos-t5-large (Chronos eval)", "mase": 2.0191, "wql": 0.0369},
]


# --------------------------------------------------------------------------- data
def _natural_order(ids: np.ndarray) -> list[str]:
    """M4 ids W1 .. W359 in numeric order."""
    return sorted(map(str, ids), key=lambda s: (len(s), s))


def pick_series(all_ids: list[str], n: int | None) -> list[str]:
    """``n`` series evenly spaced over W1 .. W359 (deterministic), or all of them."""
    if n is None or n >= len(all_ids):
        return list(all_ids)
    if n < 1:
        raise SystemExit("--series must be at least 1")
    positions = np.unique(np.linspace(0, len(all_ids) - 1, n).round().astype(int))
    return [all_ids[i] for i in positions]


def load_data(data_dir: Path, series: list[str] | None) -> dict[str, pd.DataFrame]:
    frames = {name: pd.read_parquet(data_dir / f"{name}.parquet") for name in ("train", "test")}
    for name in ("Naive2", "SES", "sNaive"):
        frames[name] = pd.read_parquet(data_dir / f"reference_{name}.parquet")
    if series is not None:
        keep = set(series)
        frames = {k: f[f["unique_id"].isin(keep)].reset_index(drop=True) for k, f in frames.items()}
    test = frames["test"].sort_values(["unique_id", "ds"]).reset_index(drop=True)
    test["step"] = test.groupby("unique_id").cumcount() + 1
    frames["test"] = test
    return frames


def _point_as_quantiles(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """A point forecast used for every quantile (how point methods get a WQL)."""
    out = frame[["unique_id", "ds"]].copy()
    for q in QUANTILES:
        out[quantile_label(q)] = frame[column].to_numpy()
    return out


# --------------------------------------------------------------------------- scoring
def score(frames: dict[str, pd.DataFrame], forecasts: pd.DataFrame) -> dict[str, Any]:
    """score_panel plus OWA (published and recomputed Naive2) and per-quantile hit rates."""
    scores = score_panel(frames["train"], frames["test"], forecasts, QUANTILES, "p50", seasonality=1)
    naive2 = frames["naive2_scores"]
    scores["owa"] = owa(scores["smape"], scores["mase"], NAIVE2_SMAPE, NAIVE2_MASE)
    scores["owa_here"] = owa(scores["smape"], scores["mase"], naive2["smape"], naive2["mase"])
    merged = frames["test"][["unique_id", "ds", "y"]].merge(forecasts, on=["unique_id", "ds"])
    scores["share_below"] = {
        quantile_label(q): float(np.mean(merged["y"] <= merged[quantile_label(q)])) for q in QUANTILES
    }
    return scores


def reference_rows(frames: dict[str, pd.DataFrame]) -> list[dict[str, Any]]:
    """The M4 benchmark forecasts and the last-value naive, scored on the chosen series."""
    test = frames["test"]
    rows = []
    for name in ("Naive2", "SES", "sNaive"):
        point = test[["unique_id", "ds", "step"]].merge(
            frames[name], on=["unique_id", "step"], how="left", validate="one_to_one"
        )
        scored = score(frames, _point_as_quantiles(point, name))
        rows.append({"method": f"{name} (M4 reference file)", **scored})
    last = frames["train"].sort_values(["unique_id", "ds"]).groupby("unique_id")["y"].last()
    point = test[["unique_id", "ds"]].assign(last=test["unique_id"].map(last).to_numpy())
    rows.append({"method": "last value (naive, point as every q)", **score(frames, _point_as_quantiles(point, "last"))})
    return rows


def naive2_scores(frames: dict[str, pd.DataFrame]) -> dict[str, float]:
    point = frames["test"][["unique_id", "ds", "step"]].merge(
        frames["Naive2"], on=["unique_id", "step"], how="left", validate="one_to_one"
    )
    point = point.rename(columns={"Naive2": "p50"})[["unique_id", "ds", "p50"]]
    return score_panel(frames["train"], frames["test"], point, [0.5], "p50", seasonality=1)


# --------------------------------------------------------------------------- platform runs
def protocol_overrides(data_path: Path, root: Path, executor: str | None = None) -> dict[str, Any]:
    overrides: dict[str, Any] = {
        "data": {"path": str(data_path), "id_col": "unique_id", "time_col": "ds", "target_col": "y"},
        "forecast": dict(PROTOCOL),
        "output": {"root": str(root)},
    }
    if executor:
        overrides["compute"] = {"executor": executor}
    return overrides


def run_platform(
    label: str,
    config: Path | None,
    extra: dict[str, Any],
    protocol: Callable[[Path], dict[str, Any]],
    series: list[str] | None,
    output: Path,
    frames: dict[str, pd.DataFrame],
) -> dict[str, Any]:
    """One platform run through run_weekly, its published rows scored."""
    root = output / "platform" / label
    if root.exists():  # this benchmark's own scratch: never score a stale or checkpointed run
        shutil.rmtree(root)
    settings = load_settings(config, deep_merge(extra, protocol(root)))

    print(f"[{time.strftime('%H:%M:%S')}] running {label} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    summary = run_weekly(settings, series)
    wall = time.perf_counter() - started
    run_id = summary["run_id"]

    published = pd.read_parquet(summary["published"])
    published = published[published["run_id"] == run_id]
    expected = set(frames["test"]["unique_id"])
    missing = sorted(expected - set(published["unique_id"]))
    if missing:
        ledger = pd.read_parquet(summary["ledger"]).set_index("unique_id")
        reasons = ledger.loc[ledger.index.intersection(missing), ["status", "reason"]]
        raise RuntimeError(f"{label}: {len(missing)} series not published:\n{reasons.to_string()}")
    scored = score(frames, published)
    ledger = pd.read_parquet(summary["ledger"])
    candidates = [c.label for c in settings.models.candidates]
    own = int((ledger["model"] == candidates[0]).sum()) if len(candidates) == 1 else None
    print(f"[{time.strftime('%H:%M:%S')}] {label}: {wall:.0f} s", file=sys.stderr, flush=True)
    return {
        "method": label,
        **scored,
        "wall_seconds": round(wall, 1),
        "own": own,
        "counts": summary.get("counts", {}),
        "winner_mix": summary.get("winner_mix", {}),
        "run_dir": summary["run_dir"],
        "candidates": candidates,
        "history_cap_seasons": settings.models.max_history_seasons,
        "ensemble_top_k": settings.selection.ensemble_top_k,
    }


# --------------------------------------------------------------------------- output
_COLUMNS = [
    ("method", "method", "{}"),
    ("smape", "sMAPE", "{:.3f}"),
    ("mase", "MASE", "{:.3f}"),
    ("owa", "OWA", "{:.3f}"),
    ("owa_here", "OWA*", "{:.3f}"),
    ("wql", "WQL", "{:.4f}"),
    ("sql", "SQL", "{:.3f}"),
    ("coverage", "cov80", "{:.3f}"),
    ("wall_seconds", "wall s", "{:.0f}"),
    ("note", "note", "{}"),
]


def _cell(row: dict[str, Any], key: str, fmt: str) -> str:
    value = row.get(key)
    if key == "note":
        return value or ""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    return fmt.format(value)


def format_table(title: str, rows: list[dict[str, Any]]) -> str:
    cells = [[header for _, header, _ in _COLUMNS]]
    cells += [[_cell(row, key, fmt) for key, _, fmt in _COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(_COLUMNS))]
    lines = [title]
    for n, line in enumerate(cells):
        text = "  ".join(
            c.ljust(w) if i in (0, len(widths) - 1) else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True))
        )
        lines.append(text.rstrip())
        if n == 0:
            lines.append("-" * len(lines[-1]))
    return "\n".join(lines)


def _note(row: dict[str, Any], n_series: int) -> str:
    parts = []
    if row.get("own") is not None:
        parts.append(f"own {row['own']}/{n_series}")
    fallback = row.get("counts", {}).get("fallback")
    if fallback:
        parts.append(f"fallback {fallback}")
    return ", ".join(parts)


def print_report(figures: dict[str, Any]) -> None:
    """The plain aligned tables (published rows, then everything computed on the series)."""
    n2, n_series, rows = figures["naive2_recomputed"], figures["n_series"], figures["platform"]
    print()
    print(f"M4 Weekly, {n_series} series, horizon 13, quantiles 0.1..0.9, as of 2017-12-31, MASE m=1")
    for setup in figures["setups"]:
        print(f"config {setup['config'] or 'embedded defaults'}: candidates {', '.join(setup['candidates'])}; "
              f"history cap {setup['history_cap_seasons']:g} seasons; ensemble top {setup['ensemble_top_k']}; "
              f"backtest windows {setup['backtest_windows']}; executor {setup['executor']}")
    print(f"Naive2 recomputed from reference_Naive2.parquet on these series: sMAPE {n2['smape']:.3f}, "
          f"MASE {n2['mase']:.3f} (published on all 359: {NAIVE2_SMAPE}, {NAIVE2_MASE})")
    print("OWA uses the published Naive2; OWA* the recomputed one on the same series. WQL of point "
          "methods uses the point for every quantile. cov80: share of y in [p10, p90].")
    print()
    print(format_table("Published (all 359 series)", figures["published"]))
    print()
    print(format_table(f"Computed on these {n_series} series", [*figures["references"], *rows]))
    for row in rows:
        print()
        print(f"{row['method']}: status {row['counts']}; winners {row['winner_mix']}")
        print("  share of y <= quantile: " + "  ".join(f"{k} {v:.2f}" for k, v in row["share_below"].items()))


def combine(specs: list[str]) -> dict[str, Any]:
    """Merge the platform rows of several accuracy.json files scored on the same series.

    Each spec is ``PATH`` or ``TAG=PATH``; when the files come from different configs (or a
    tag is given) each row's method is suffixed with ``[TAG]`` (default: the config's stem).
    """
    tagged = [spec.split("=", 1) if "=" in spec else [None, spec] for spec in specs]
    parts = [json.loads(Path(path).read_text()) for _, path in tagged]
    first = parts[0]
    for (_, path), part in zip(tagged[1:], parts[1:], strict=True):
        if part["series"] != first["series"]:
            raise SystemExit(f"{path} was scored on other series than {tagged[0][1]}")
    configs = [part["setups"][0]["config"] for part in parts]
    label_rows = len(set(configs)) > 1 or any(tag for tag, _ in tagged)
    rows = []
    for (tag, _), part, config in zip(tagged, parts, configs, strict=True):
        tag = tag or (Path(config).stem if config else "defaults")
        for row in part["platform"]:
            rows.append({**row, "method": f"{row['method']} [{tag}]"} if label_rows else row)
    setups = [setup for part in parts for setup in part["setups"]]
    unique_setups = [s for i, s in enumerate(setups) if s not in setups[:i]]
    return {**first, "setups": unique_setups, "platform": rows}


def _stop_embedded_cluster() -> None:
    """Stop the Dask cluster the platform may have started in this process."""
    try:
        from forecasting.orchestration.executors import shutdown_embedded_cluster
    except ImportError:
        return
    shutdown_embedded_cluster()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                        help="M4 Weekly folder (default ../shared/data/m4-weekly beside the project)")
    parser.add_argument("--series", type=int, default=None,
                        help="score N series evenly spaced over W1..W359 (default all 359)")
    parser.add_argument("--config", type=Path, default=None,
                        help="platform YAML config (default: the embedded defaults); the benchmark "
                             "protocol (data, forecast section, output root) overrides it")
    parser.add_argument("--output", type=Path, default=None,
                        help="folder for the runs and accuracy.json (default: a fresh temp dir)")
    parser.add_argument("--candidates-each", action="store_true",
                        help="also score each single candidate run alone (no ensemble)")
    parser.add_argument("--only", default=None,
                        help="with --candidates-each: comma-separated candidate labels to run alone")
    parser.add_argument("--skip-selection", action="store_true",
                        help="do not run the per-series selection (only the single candidates)")
    parser.add_argument("--executor", default=None,
                        help="override compute.executor (e.g. serial or dask); default: the config's")
    parser.add_argument("--combine", nargs="+", default=None, metavar="[TAG=]JSON",
                        help="print the merged tables of earlier accuracy.json files; runs nothing")
    args = parser.parse_args(argv)

    if args.combine:
        print_report(combine(args.combine))
        return 0

    data_dir = args.data_dir.resolve()
    output = (args.output or Path(tempfile.mkdtemp(prefix="m4-accuracy-"))).resolve()
    output.mkdir(parents=True, exist_ok=True)
    all_ids = _natural_order(pd.read_parquet(data_dir / "test.parquet", columns=["unique_id"])["unique_id"].unique())
    series = pick_series(all_ids, args.series)
    subset = None if len(series) == len(all_ids) else series
    frames = load_data(data_dir, subset)
    frames["naive2_scores"] = naive2_scores(frames)
    n_series = len(series)

    def protocol(root: Path) -> dict[str, Any]:
        return protocol_overrides(data_dir / "train.parquet", root, args.executor)

    base = load_settings(args.config, protocol(output))
    rows: list[dict[str, Any]] = []
    try:
        if not args.skip_selection:
            row = run_platform("selection", args.config, {}, protocol, subset, output, frames)
            top_k = base.selection.ensemble_top_k
            row["method"] = f"platform: per-series selection{f' (+median ens. top {top_k})' if top_k >= 2 else ''}"
            rows.append(row)
        if args.candidates_each:
            wanted = None if args.only is None else {s.strip() for s in args.only.split(",") if s.strip()}
            for candidate in base.models.candidates:
                if wanted is not None and candidate.label not in wanted:
                    continue
                extra = {"models": {"candidates": [candidate.model_dump()]}, "selection": {"ensemble_top_k": 0}}
                row = run_platform(f"only-{candidate.label}", args.config, extra, protocol, subset, output, frames)
                row["method"] = f"platform: always {candidate.label}"
                rows.append(row)
    finally:
        _stop_embedded_cluster()
    for row in rows:
        row["note"] = _note(row, n_series)

    figures = {
        "n_series": n_series,
        "series": series,
        "protocol": PROTOCOL,
        "setups": [{
            "config": str(args.config) if args.config else None,
            "candidates": [c.label for c in base.models.candidates],
            "history_cap_seasons": base.models.max_history_seasons,
            "ensemble_top_k": base.selection.ensemble_top_k,
            "backtest_windows": base.backtest.n_windows,
            "executor": getattr(base.compute, "executor", "serial"),
        }],
        "naive2_recomputed": frames["naive2_scores"],
        "naive2_published": {"smape": NAIVE2_SMAPE, "mase": NAIVE2_MASE},
        "published": PUBLISHED,
        "references": reference_rows(frames),
        "platform": rows,
    }
    print_report(figures)
    path = output / "accuracy.json"
    path.write_text(json.dumps(figures, indent=1, default=str))
    print(f"\nfigures: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
