"""Decision benchmark: replay weekly runs and judge the champion decisions on the weeks that followed.

For each dataset (M4 weekly, Walmart; ../shared/data), ``--series`` series run through the real
weekly job (``run_weekly``: backtest, selection, registration with its champion decision,
publishing; embedded MLflow store) at ``--origins`` origins one week apart, the last one 13 weeks
before the data ends, so that every origin's 13 following weeks are real. Every ``--bad-every``-th
run uses a weaker configuration (candidates HistoricAverage and WindowAverage only), as a bad
deployment would; the others use the candidate set ``--candidates``.

At each origin with a champion, the "better version" is the one whose forecasts from that origin
score lower (mean scaled quantile loss over series and the 13 following weeks): the new version's
own forecasts, or the champion's bundle refitted on the history up to the origin. Printed: how
often the decision picked the better version (all decisions, and those where the two differ by
more than 2 %), the mean loss of what was published under the decision rule against always
publishing the newest version and always the first, and the held-out evidence against the new
winners' in-sample loss (the bias the held-out choice removes).

Usage (from the project root)::

    .venv/bin/python benchmarks/decision.py --series 60 --origins 10
"""

from __future__ import annotations

import argparse
import json
import os
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
from forecasting.data.contract import quantile_label  # noqa: E402
from forecasting.evaluation.losses import score_panel  # noqa: E402
from forecasting.orchestration.local import run_weekly  # noqa: E402
from forecasting.registry.operator import alias_version  # noqa: E402
from forecasting.registry.registration import bundle_forecasts  # noqa: E402
from forecasting.registry.store import tracking_uri  # noqa: E402

DATA = PROJECT_ROOT.parent / "shared" / "data"
HORIZON, QUANTILES = 13, [0.1, 0.5, 0.9]
GOOD = ["AutoTheta", "Naive", "SeasonalNaive", "HistoricAverage", "WindowAverage", "RandomWalkWithDrift"]
BAD = ["HistoricAverage", "WindowAverage"]


def load(dataset: str, n_series: int) -> tuple[pd.DataFrame, str]:
    """``n_series`` complete series, evenly spaced over the sorted ids, and their frequency."""
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


def loss(rows: pd.DataFrame, history: pd.DataFrame, origin: pd.Timestamp) -> float:
    """Mean scaled quantile loss (per series, then over series) of forecasts from ``origin`` on the next 13 weeks."""
    train = history[history["ds"] <= origin]
    test = history[(history["ds"] > origin) & history["unique_id"].isin(set(rows["unique_id"]))]
    test = test.groupby("unique_id").head(HORIZON)
    return score_panel(train, test, rows[["unique_id", "ds", *map(quantile_label, QUANTILES)]], QUANTILES)["sql"]


def replay(dataset: str, n_series: int, n_origins: int, bad_every: int, candidates: list[str], root: Path) -> pd.DataFrame:
    history, freq = load(dataset, n_series)
    path = root / "history.parquet"
    history.to_parquet(path)
    last = history["ds"].max() - pd.Timedelta(weeks=HORIZON)
    origins = pd.date_range(end=last, periods=n_origins, freq=freq)
    rows = []
    first_version = ""
    for i, origin in enumerate(origins):
        bad = bad_every > 0 and i % bad_every == bad_every - 1
        settings = load_settings(None, {
            "data": {"path": str(path)}, "output": {"root": str(root)},
            "forecast": {"freq": freq, "horizon": HORIZON, "quantiles": QUANTILES, "as_of": str(origin.date())},
            "models": {"candidates": [{"name": c} for c in (BAD if bad else candidates)]},
            "compute": {"executor": "serial", "n_shards": 2, "progress": False},
            "registry": {"enabled": True}, "database": {"enabled": False}, "reporting": {"enabled": False},
        })
        from mlflow import MlflowClient

        uri = tracking_uri(settings)
        before = alias_version(MlflowClient(uri, uri), "forecasting", "champion") if i else ""
        started = time.perf_counter()
        summary = run_weekly(settings)
        registration = json.loads((Path(summary["run_dir"]) / "registration.json").read_text())
        decision = registration["decision"]
        own = pd.read_parquet(summary["forecasts"])
        published = pd.read_parquet(summary["published"])
        cut = history[history["ds"] <= origin]
        first_version = first_version or registration["version"]
        record = {"origin": origin, "config": "bad" if bad else "good", "version": registration["version"],
                  "alias": registration["alias"], "new": loss(own, history, origin),
                  "published": loss(published, history, origin),
                  "heldout_new": decision.get("new_loss"), "heldout_champion": decision.get("champion_loss"),
                  "in_sample_new": decision.get("new_loss_in_sample"), "series_compared": decision.get("series_compared")}
        if before:
            old = published if registration["alias"] == "challenger" else bundle_forecasts(settings, before, cut, HORIZON)
            record["champion"] = loss(old, history, origin)
        first = own if registration["version"] == first_version else bundle_forecasts(settings, first_version, cut, HORIZON)
        record["first"] = loss(first, history, origin)
        record["seconds"] = round(time.perf_counter() - started, 1)
        rows.append(record)
        print(f"  {origin:%Y-%m-%d} {record['config']:4} v{record['version']} {record['alias']:10} "
              f"new {record['new']:.3f} champion {record.get('champion', float('nan')):.3f} "
              f"held-out {record['heldout_new'] or float('nan'):.3f} vs {record['heldout_champion'] or float('nan'):.3f} "
              f"({record['seconds']} s)", flush=True)
    return pd.DataFrame(rows)


def report(dataset: str, frame: pd.DataFrame) -> None:
    decided = frame[frame["champion"].notna()] if "champion" in frame else frame.iloc[0:0]
    picked_new = decided["alias"] == "champion"
    new_better = decided["new"] < decided["champion"]
    correct = picked_new == new_better
    clear = (decided["new"] / decided["champion"] - 1).abs() > 0.02
    print(f"\n{dataset}: {len(frame)} weekly runs, {len(decided)} decisions against a champion "
          f"({int((decided['config'] == 'bad').sum())} of a bad configuration)")
    print(f"  decision picked the better version: {correct.mean():.0%} of decisions "
          f"({correct[clear].mean():.0%} of the {int(clear.sum())} where they differ by more than 2 %); "
          f"bad configurations kept out: {int((~picked_new & (decided['config'] == 'bad')).sum())} of "
          f"{int((decided['config'] == 'bad').sum())}")
    print(f"  mean loss of the published forecasts: decision rule {frame['published'].mean():.4f}, "
          f"always newest {frame['new'].mean():.4f}, always first {frame['first'].mean():.4f}")
    for config, held in decided.dropna(subset=["heldout_new", "in_sample_new"]).groupby("config"):
        print(f"  new versions of the {config} configuration (mean over {len(held)} decisions): held-out loss "
              f"{held['heldout_new'].mean():.4f} against the champion's rule {held['heldout_champion'].mean():.4f}; "
              f"the new winners' in-sample loss on the same window {held['in_sample_new'].mean():.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="m4,walmart")
    parser.add_argument("--series", type=int, default=60)
    parser.add_argument("--origins", type=int, default=10)
    parser.add_argument("--bad-every", type=int, default=3, help="every n-th run uses the weak configuration (0: never)")
    parser.add_argument("--candidates", default=",".join(GOOD))
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    for dataset in args.datasets.split(","):
        print(f"{dataset}: {args.series} series, {args.origins} weekly origins")
        with tempfile.TemporaryDirectory(prefix="decision-bench-") as tmp:
            frame = replay(dataset, args.series, args.origins, args.bad_every, args.candidates.split(","), Path(tmp))
        report(dataset, frame)


if __name__ == "__main__":
    main()
