"""Registry scale: one bundle for every series of a run, against one registered model per series.

Registers the winners of ``--series`` (default 10,000) demo series as ONE bundle version
(the platform's design), then ``--per-series`` (default 100) series as one registered
model each, one by one, with the same code (each with its own MLflow run, explicit pip
requirements, hashes and champion decision). Prints wall time and registry size
(SQLite database plus artifact folder) of both, and extrapolates the per-series cost
linearly to 10,000 and 100,000 models. Both use a fresh embedded store under a
temporary folder. Nothing is asserted (the machine may be shared).

Usage (from the project root, after ``make setup``)::

    .venv/bin/python benchmarks/registry_scale.py --series 10000 --per-series 100
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from forecasting.config import Settings
from forecasting.data.demo import generate_demo_panel
from forecasting.orchestration.run_catalog import Manifest
from forecasting.registry.registration import RunRecord, register_run
from forecasting.registry.store import ensure_store

MODELS = ["AutoETS", "AutoTheta", "SeasonalNaive", "Naive", "HistoricAverage"]


def _frames(history: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A run's ledger, leaderboard and last-window scores for the series of ``history``."""
    rng = np.random.default_rng(seed)
    ids = np.sort(history["unique_id"].unique())
    losses = rng.uniform(0.3, 1.5, size=(ids.size, len(MODELS)))
    board = pd.DataFrame({
        "unique_id": np.repeat(ids, len(MODELS)), "candidate": np.tile(MODELS, ids.size),
        "scaled_quantile_loss": losses.ravel(), "mase": losses.ravel(), "coverage": 0.8, "n_windows": 2,
    })
    board["rank"] = board.groupby("unique_id")["scaled_quantile_loss"].rank(method="first").astype("int64")
    board["is_winner"] = board["rank"] == 1
    winners = board[board["is_winner"]].set_index("unique_id")["candidate"]
    ledger = pd.DataFrame({"unique_id": ids, "status": "ok", "reason": "", "winner": winners.reindex(ids).to_numpy(),
                           "model": winners.reindex(ids).to_numpy(), "ensemble_members": "", "lifecycle": "smooth"})
    scores = board[["unique_id", "candidate", "scaled_quantile_loss", "mase", "coverage"]].assign(
        cutoff=history["ds"].max())
    return ledger, board.drop(columns="n_windows"), scores


def _record(history: pd.DataFrame, settings: Settings, run_id: str, seed: int) -> RunRecord:
    ledger, board, scores = _frames(history, seed)
    manifest = Manifest(run_id=run_id, as_of=pd.Timestamp(history["ds"].max()), data_fingerprint="benchmark", source="demo")
    return RunRecord(manifest, settings, ledger, board, scores, history, [])


def _size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def _settings(root: Path, name: str = "forecasting") -> Settings:
    return Settings(output={"root": str(root)}, registry={"model_name": name})


def bundle(history: pd.DataFrame, workdir: Path) -> tuple[float, int]:
    settings = _settings(workdir / "bundle")
    ensure_store(settings)  # created before timing, as prepare_run does
    empty = _size(workdir / "bundle" / "mlflow")
    started = time.perf_counter()
    result = register_run(_record(history, settings, "bundle-run", 0))
    elapsed = time.perf_counter() - started
    assert result["version"] == "1"
    return elapsed, _size(workdir / "bundle" / "mlflow") - empty


def per_series(history: pd.DataFrame, n: int, workdir: Path) -> tuple[float, int]:
    root = workdir / "per-series"
    ensure_store(_settings(root))
    empty = _size(root / "mlflow")
    ids = np.sort(history["unique_id"].unique())[:n]
    groups = dict(tuple(history[history["unique_id"].isin(ids)].groupby("unique_id")))
    started = time.perf_counter()
    for i, unique_id in enumerate(ids):
        settings = _settings(root, f"series-{unique_id}")
        register_run(_record(groups[unique_id], settings, f"run-{unique_id}", i))
    return time.perf_counter() - started, _size(root / "mlflow") - empty


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--per-series", type=int, default=100)
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    history = generate_demo_panel(n_series=args.series, seed=3)
    with tempfile.TemporaryDirectory(prefix="registry-scale-") as tmp:
        workdir = Path(tmp)
        bundle_s, bundle_bytes = bundle(history, workdir)
        series_s, series_bytes = per_series(history, args.per_series, workdir)
    each_s, each_bytes = series_s / args.per_series, series_bytes / args.per_series
    mb = 1 / 1e6
    print(f"one bundle, {args.series:,} series: {bundle_s:.1f} s, {bundle_bytes * mb:.1f} MB, 1 version")
    print(f"per-series models, {args.per_series} registered one by one: {series_s:.1f} s "
          f"({each_s:.2f} s and {each_bytes / 1e3:.0f} kB each)")
    for n in (10_000, 100_000):
        hours = each_s * n / 3600
        print(f"  extrapolated to {n:,} per-series models: {hours:.1f} h, {each_bytes * n * mb / 1e3:.1f} GB, "
              f"{n:,} registered models")
    bundle_per_series = bundle_s / args.series
    print(f"bundle: {bundle_per_series * 1e3:.2f} ms per series; per-series registration is "
          f"{each_s / bundle_per_series:,.0f}x slower per series")


if __name__ == "__main__":
    main()
