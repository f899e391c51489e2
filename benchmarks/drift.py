"""Drift benchmark: does the retraining rule catch shifted series fast, and leave the others alone?

For each dataset (M4 weekly, Walmart; ../shared/data), ``--series`` series are trained once by the
platform at ``T0`` (``--weeks`` before the data ends; a cheap candidate set by default) and then
forecast every week for ``--weeks`` weeks by their bundle refitted on the fresh history, as the
weekly job publishes them (13 steps, quantiles 0.1/0.5/0.9). Each series runs in five variants
from a shift week drawn per series (uniform over the first ``--weeks - 8`` weeks):

- ``none``: the real data (every alarm on it is a false retrain);
- ``+50%``, ``+20%``, ``-20%``: the level multiplied from the shift week on;
- ``trend``: a trend break, ``+3 %`` of the series' recent mean level more every week.

The monitor's rule (``forecasting.monitoring``: points from all origins and horizons, the run's
backtest reference with the configured materiality, the CUSUM) is replayed week by week; an
alarm is a retrain, after which the series starts again from the forecasts published from then
on. Printed per dataset and variant: the share of shifted series detected within 4 weeks and at
all, the median delay in weeks (an alarm in the shift week itself: 1), how many series the shift
made materially worse (at least twice the loss of the real data over its first 4 weeks: what an
accuracy monitor can see) and the share of those detected within 4 weeks; and the false retrains
per 100 series per quarter (alarms on the ``none`` variant), with the rate the rule would have if
its weekly increments were independent. ``--grid`` also prints other drifts and thresholds.

Usage (from the project root)::

    .venv/bin/python benchmarks/drift.py --series 120 --weeks 26
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:  # runnable as a plain script from anywhere
    sys.path.insert(0, str(PROJECT_ROOT))

from forecasting.config import load_settings  # noqa: E402
from forecasting.monitoring.cusum import CusumRule, false_alarm_rate, weekly_increments  # noqa: E402
from forecasting.monitoring.live import live_points, with_reference  # noqa: E402
from forecasting.monitoring.reference import run_reference  # noqa: E402
from forecasting.orchestration.run_catalog import RunFolder, run_history  # noqa: E402
from forecasting.orchestration.steps.finalize import combine_shards as finalize  # noqa: E402
from forecasting.orchestration.steps.prepare import create_run_folder as prepare_run  # noqa: E402
from forecasting.orchestration.steps.register import training_groups  # noqa: E402
from forecasting.orchestration.steps.train_shard import train_shard_task  # noqa: E402
from forecasting.registry.bundle import BundleForecaster, winners_manifest  # noqa: E402

DATA = PROJECT_ROOT.parent / "shared" / "data"
HORIZON, QUANTILES = 13, [0.1, 0.5, 0.9]
CHEAP = ["Naive", "SeasonalNaive", "HistoricAverage", "WindowAverage", "RandomWalkWithDrift"]
VARIANTS = ("none", "+50%", "+20%", "-20%", "trend")


def load(dataset: str, n_series: int) -> tuple[pd.DataFrame, str]:
    """Long history of ``n_series`` complete series, evenly spaced over the sorted ids, and its frequency."""
    if dataset == "m4":
        folder = DATA / "m4-weekly"
        frame = pd.concat([pd.read_parquet(folder / "train.parquet"), pd.read_parquet(folder / "test.parquet")])
        freq = "W-SUN"
    else:
        frame = pd.read_parquet(DATA / "walmart" / "sales.parquet", columns=["unique_id", "ds", "y"])
        freq = "W-FRI"
    frame = frame.assign(ds=pd.to_datetime(frame["ds"]).astype("datetime64[ns]"), unique_id=frame["unique_id"].astype(str))
    counts = frame.groupby("unique_id")["ds"].agg(["size", "max"])
    complete = counts[(counts["size"] >= 130) & (counts["max"] == frame["ds"].max())].index.sort_values()
    chosen = complete[np.linspace(0, len(complete) - 1, min(n_series, len(complete))).round().astype(int)]
    return frame[frame["unique_id"].isin(set(chosen))].sort_values(["unique_id", "ds"]).reset_index(drop=True), freq


def train_once(history: pd.DataFrame, freq: str, as_of: pd.Timestamp, root: Path, candidates: list[str]):
    """The platform's run at ``as_of``: its bundle (as the registry holds it) and its backtest reference."""
    path = root / "history.parquet"
    history.to_parquet(path)
    settings = load_settings(None, {
        "data": {"path": str(path)}, "output": {"root": str(root)},
        "forecast": {"freq": freq, "horizon": HORIZON, "quantiles": QUANTILES, "as_of": str(as_of.date())},
        "models": {"candidates": [{"name": c} for c in candidates]},
        "compute": {"executor": "serial", "n_shards": 1, "progress": False},
        "registry": {"enabled": False}, "database": {"enabled": False}, "reporting": {"enabled": False},
    })
    prepared = prepare_run(settings)
    for shard in prepared["shards"]:
        train_shard_task(prepared["run_dir"], shard)
    finalize(prepared["run_dir"])
    folder = RunFolder(Path(prepared["run_dir"]))
    ledger, leaderboard = pd.read_parquet(folder.output("ledger")), pd.read_parquet(folder.output("leaderboard"))
    trained = run_history(folder, prepared["shards"])
    bundle = BundleForecaster(settings, winners_manifest(ledger, leaderboard, training_groups(folder)), trained,
                              run_id=folder.run_id, as_of=str(as_of))
    published = ledger[ledger["model"].fillna("") != ""].set_index("unique_id")["model"]
    reference = run_reference(folder.run_id, pd.read_parquet(folder.output("backtest")), published, trained, QUANTILES)
    return bundle, reference, folder.run_id


def variants(history: pd.DataFrame, as_of: pd.Timestamp, weeks: int, freq: str, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    """Every series in every variant (id ``series|variant``), and each series' shift week."""
    rng = np.random.default_rng(seed)
    ids = sorted(history["unique_id"].unique())
    dates = pd.date_range(as_of, periods=weeks + 1, freq=freq)[1:]
    start = pd.Series(dates[rng.integers(0, weeks - 8, size=len(ids))], index=ids)
    frames = []
    for variant in VARIANTS:
        frame = history.copy()
        after = frame["ds"] >= frame["unique_id"].map(start)
        if variant in ("+50%", "+20%", "-20%"):
            factor = {"+50%": 1.5, "+20%": 1.2, "-20%": 0.8}[variant]
            frame.loc[after, "y"] *= factor
        elif variant == "trend":
            level = frame[frame["ds"] <= as_of].groupby("unique_id")["y"].apply(lambda y: y.tail(13).abs().mean())
            steps = ((frame["ds"] - frame["unique_id"].map(start)) / pd.Timedelta(weeks=1)).round() + 1
            frame.loc[after, "y"] += (0.03 * frame["unique_id"].map(level) * steps)[after]
        frames.append(frame.assign(unique_id=frame["unique_id"] + "|" + variant))
    return pd.concat(frames, ignore_index=True), start


def weekly_forecasts(bundle: BundleForecaster, panel: pd.DataFrame, start: pd.Series, as_of: pd.Timestamp,
                     weeks: int, freq: str) -> pd.DataFrame:
    """What the weekly job publishes from each origin: the bundle refitted on the history up to it.

    Before its shift week a shifted variant's history is the real one: its forecasts are the
    ``none`` variant's, so they are computed once.
    """
    base = panel["unique_id"].str.split("|").str[0]
    variant = panel["unique_id"].str.split("|").str[1]
    winners = bundle.winners.reset_index()
    bundle.winners = pd.concat([winners.assign(unique_id=winners["unique_id"] + "|" + v) for v in VARIANTS]
                               ).set_index("unique_id")
    frames = []
    for origin in pd.date_range(as_of, periods=weeks, freq=freq):
        own = (variant == "none") | (base.map(start) <= origin)
        cut = panel[own & (panel["ds"] <= origin)]
        rows = bundle.forecast(cut, HORIZON)
        frames.append(rows.assign(forecast_origin=origin))
        shared = rows[rows["unique_id"].str.endswith("|none")]
        for v in VARIANTS[1:]:
            copies = shared[shared["unique_id"].str.split("|").str[0].map(start) > origin]
            frames.append(copies.assign(unique_id=copies["unique_id"].str.replace("|none", f"|{v}"), forecast_origin=origin))
    return pd.concat(frames, ignore_index=True)


def alarms(points: pd.DataFrame, rule: CusumRule) -> dict[str, list[pd.Timestamp]]:
    """Per series, the weeks the rule raised an alarm; after each, only forecasts published from then on count."""
    ordered = points.sort_values(["unique_id", "ds"], kind="stable")
    ids = ordered["unique_id"].to_numpy()
    weeks = ordered["ds"].to_numpy()
    origins = ordered["forecast_origin"].to_numpy()
    scores = rule.scores(ordered["loss"].to_numpy(), ordered["reference"].to_numpy())
    bounds = np.r_[0, np.flatnonzero(ids[1:] != ids[:-1]) + 1, len(ids)]
    found: dict[str, list[pd.Timestamp]] = {}
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        week, origin, score = weeks[start:end], origins[start:end], scores[start:end]
        cuts = np.r_[0, np.flatnonzero(week[1:] != week[:-1]) + 1, len(week)]
        statistic, reset, raised = 0.0, np.datetime64("NaT"), []
        for a, b in zip(cuts[:-1], cuts[1:], strict=True):
            kept = score[a:b] if np.isnat(reset) else score[a:b][origin[a:b] >= reset]
            if kept.size == 0:
                continue
            statistic = max(0.0, statistic + float(kept.mean()) - rule.drift)
            if statistic >= rule.threshold:
                raised.append(pd.Timestamp(week[a]))
                statistic, reset = 0.0, week[a]
        found[str(ids[start])] = raised
    return found


def worse(points: pd.DataFrame, start: pd.Series, variant: str) -> pd.Series:
    """Per series: whether the shift made its published forecasts materially worse (at least twice the
    loss of the real data over the 4 weeks from the shift) - what an accuracy monitor can see."""
    base = points["unique_id"].str.split("|").str[0]
    window = (points["ds"] >= base.map(start)) & (points["ds"] < base.map(start) + pd.Timedelta(weeks=4))
    losses = points[window].assign(base=base[window]).groupby(["base", "unique_id"])["loss"].mean()
    shifted = losses[losses.index.get_level_values(1).str.endswith(f"|{variant}")]
    real = losses[losses.index.get_level_values(1).str.endswith("|none")]
    ratio = shifted.droplevel(1) / real.droplevel(1).reindex(shifted.droplevel(1).index)
    return (ratio >= 2.0).reindex(start.index, fill_value=False)


def summarize(found: dict[str, list[pd.Timestamp]], start: pd.Series, weeks: int,
              points: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per shifted variant: detected within 4 weeks, at all, median delay (and within 4 weeks among the
    series the shift made materially worse); false retrains on the real data."""
    rows = []
    n = len(start)
    for variant in VARIANTS[1:]:
        delays = {}
        for base, shift in start.items():
            after = [w for w in found.get(f"{base}|{variant}", []) if w >= shift]
            if after:
                delays[base] = (after[0] - shift).days / 7 + 1  # an alarm on the shift week itself: 1 week
        row = {"variant": variant, "series": n, "detected_4w": sum(d <= 4 for d in delays.values()) / n,
               "detected": len(delays) / n,
               "median_delay_weeks": float(np.median(list(delays.values()))) if delays else np.nan}
        if points is not None:
            hurt = worse(points, start, variant)
            row["made_worse"] = int(hurt.sum())
            row["detected_4w_of_worse"] = (sum(delays.get(b, 99) <= 4 for b in hurt.index[hurt]) / hurt.sum()
                                           if hurt.any() else np.nan)
        rows.append(row)
    table = pd.DataFrame(rows)
    false_alarms = sum(len(found.get(f"{base}|none", [])) for base in start.index)
    table.attrs["false_per_100_per_quarter"] = 100.0 * false_alarms / (n * weeks / 13.0)
    table.attrs["false_alarms"] = false_alarms
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="m4,walmart")
    parser.add_argument("--series", type=int, default=120)
    parser.add_argument("--weeks", type=int, default=26)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--candidates", default=",".join(CHEAP))
    parser.add_argument("--grid", action="store_true", help="also print other drifts and thresholds")
    args = parser.parse_args()
    settings = load_settings(None)
    rule = CusumRule(settings.monitoring.cusum_drift, settings.monitoring.cusum_threshold)
    for dataset in args.datasets.split(","):
        started = time.perf_counter()
        history, freq = load(dataset, args.series)
        as_of = history["ds"].max() - pd.Timedelta(weeks=args.weeks)
        with tempfile.TemporaryDirectory(prefix="drift-bench-") as tmp:
            bundle, reference, run_id = train_once(history[history["ds"] <= as_of], freq, as_of, Path(tmp),
                                                   args.candidates.split(","))
        trained = time.perf_counter() - started
        panel, start = variants(history, as_of, args.weeks, freq, args.seed)
        forecasts = weekly_forecasts(bundle, panel, start, as_of, args.weeks, freq).assign(run_id=run_id)
        points = live_points(forecasts, panel, QUANTILES)
        base_ids = points["unique_id"].str.split("|").str[0]
        references = {run_id: reference}
        reference.levels.index = reference.levels.index.astype(str)
        points = with_reference(points.assign(unique_id=base_ids), references, settings.monitoring.min_scale_loss,
                                settings.monitoring.materiality).assign(unique_id=points["unique_id"])
        print(f"\n{dataset}: {len(start)} series x {len(VARIANTS)} variants, {args.weeks} weeks from {as_of:%Y-%m-%d} "
              f"({freq}); trained in {trained:.0f} s, forecasts and monitor in {time.perf_counter() - started - trained:.0f} s")
        rules = [rule]
        if args.grid:
            rules += [CusumRule(d, h) for d in (0.5, 0.7, 0.9, 1.2) for h in (2.0, 3.0, 4.0) if (d, h) != (rule.drift, rule.threshold)]
        for each in rules:
            table = summarize(alarms(points, each), start, args.weeks, points)
            null = weekly_increments(points[points["unique_id"].str.endswith("|none")], each)["x"].to_numpy()
            print(f"drift {each.drift:g}, threshold {each.threshold:g}: false retrains per 100 series per quarter "
                  f"{table.attrs['false_per_100_per_quarter']:.2f} ({table.attrs['false_alarms']} on the real data; "
                  f"{100 * false_alarm_rate(null, each):.2f} if its weekly increments were independent)")
            print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
