"""A finished run folder at any scale without training: for testing and measuring the report
(``tests/unit/orchestration/test_run_report.py``, ``benchmarks/report_scale.py``).

The input goes through the real ``create_run_folder`` (validation, lifecycle, sharding) and the
shards' results through the real ``combine_shards``; only the training in between is replaced by
synthetic results of the same shape: per series x candidate x window a loss, the backtest
rows (actuals from the history, quantiles around them) and a published forecast. A share
of the series falls back, and a share of the input is poisoned so that it is quarantined.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecasting.config import Settings
from forecasting.data.contract import (
    STATUS_ENDED,
    STATUS_FALLBACK,
    STATUS_NEW,
    STATUS_OK,
    quantile_label,
)
from forecasting.data.demo import generate_demo_panel
from forecasting.data.lifecycle import ENDED, NEW
from forecasting.evaluation.windows import backtest_windows
from forecasting.orchestration.run_catalog import RunFolder
from forecasting.orchestration.steps.finalize import combine_shards
from forecasting.orchestration.steps.prepare import create_run_folder
from forecasting.publishing.table import write_atomic

FALLBACK_MODEL = "Naive"


def synthetic_settings(output_root: Path, data: Path, n_series: int, n_candidates: int = 6, n_shards: int = 4) -> Settings:
    settings = Settings()
    candidates = [c.model_dump() for c in settings.models.candidates[:n_candidates]]
    if not any(c["name"] == "Naive" for c in candidates):
        candidates.append({"name": "Naive"})
    return Settings(
        output={"root": output_root},
        data={"path": data},
        models={"candidates": candidates},
        demo={"n_series": n_series},
        compute={"n_shards": n_shards, "progress": False},
    )


def _poisoned_panel(n_series: int, seed: int, quarantine_share: float) -> pd.DataFrame:
    panel = generate_demo_panel(n_series=n_series, seed=seed)
    ids = np.sort(panel["unique_id"].unique())
    rng = np.random.default_rng(seed)
    poisoned = rng.choice(ids, size=int(round(quarantine_share * len(ids))), replace=False)
    rows = panel.index[panel["unique_id"].isin(poisoned)]
    first = panel.loc[rows].groupby("unique_id").head(1).index
    panel.loc[first, "y"] = np.nan  # non_finite_values: quarantined under the default settings
    return panel


def _series_results(
    uid: str, ds: np.ndarray, y: np.ndarray, lifecycle: str, settings: Settings, labels: list[str],
    rng: np.random.Generator, fallback_share: float,
) -> tuple[dict[str, Any], list[dict[str, Any]], list[pd.DataFrame], pd.DataFrame | None]:
    h, quantiles = settings.forecast.horizon, sorted(settings.forecast.quantiles)
    ledger: dict[str, Any] = {"unique_id": uid, "lifecycle": lifecycle, "n_obs": int(y.size)}
    if lifecycle == ENDED:
        return {**ledger, "status": STATUS_ENDED, "reason": "ended", "detail": "no recent demand"}, [], [], None
    spread = max(float(np.std(y[-52:])), 1.0)
    scores, backtest = [], []
    winner = ""
    if lifecycle != NEW:
        windows = backtest_windows(y.size, h, settings.backtest.n_windows, settings.backtest_step)[-2:]
        skill = rng.lognormal(0.0, 0.25, size=len(labels)) * np.linspace(0.7, 1.1, len(labels))[rng.permutation(len(labels))]
        for i, label in enumerate(labels):
            for window in windows:
                actual = y[window.test_slice]
                width = spread * skill[i]
                p50 = actual + rng.normal(0.0, 0.6 * width, size=h)
                frame = pd.DataFrame({"unique_id": uid, "candidate": label, "cutoff": ds[window.train_end - 1],
                                      "ds": ds[window.test_slice], "y": actual})
                for q in quantiles:
                    frame[quantile_label(q)] = np.maximum(p50 + (q - 0.5) * 2.6 * width, 0.0)
                backtest.append(frame)
                lower, upper = frame[quantile_label(quantiles[0])], frame[quantile_label(quantiles[-1])]
                scores.append({"unique_id": uid, "candidate": label, "cutoff": ds[window.train_end - 1],
                               "scaled_quantile_loss": float(skill[i] * rng.uniform(0.8, 1.2)),
                               "mase": float(skill[i] * rng.uniform(1.0, 1.6)),
                               "coverage": float(np.mean((actual >= lower) & (actual <= upper)))})
        means = pd.DataFrame(scores).groupby("candidate")["scaled_quantile_loss"].mean()
        winner = str(means.idxmin())
    if lifecycle == NEW:
        status, reason, detail, model = STATUS_NEW, "short_history", "", FALLBACK_MODEL
    elif rng.uniform() < fallback_share:
        reason = "quality_gate"
        model = FALLBACK_MODEL if winner != FALLBACK_MODEL else "HistoricAverage"
        status, detail = STATUS_FALLBACK, f"quality_gate: {winner}: forecast_explosion"
    else:
        status, reason, detail, model = STATUS_OK, "", "", winner
    ledger.update(status=status, reason=reason, detail=detail, winner=winner, model=model, ensemble_members="",
                  n_candidates=len(labels) if winner else 0, repairs="", failures=detail)
    level = float(np.mean(y[-13:]))
    future = pd.date_range(pd.Timestamp(ds[-1]), periods=h + 1, freq=settings.forecast.freq)[1:]
    forecast = pd.DataFrame({"unique_id": uid, "ds": future, "horizon": np.arange(1, h + 1), "model": model, "status": status})
    for q in quantiles:
        forecast[quantile_label(q)] = np.maximum(level + (q - 0.5) * 2.6 * spread * np.sqrt(np.arange(1, h + 1) / 4 + 0.75), 0.0)
    return ledger, scores, backtest, forecast


def build_synthetic_run(
    output_root: str | Path, n_series: int = 1000, n_candidates: int = 6, seed: int = 0,
    fallback_share: float = 0.03, quarantine_share: float = 0.01, n_shards: int = 4,
) -> dict[str, Any]:
    """Prepare, synthesize every shard's results, finalize; returns finalize's summary plus ``run_dir``."""
    root = Path(output_root).resolve()
    data = root / "input" / f"synthetic-{n_series}-{seed}.parquet"
    data.parent.mkdir(parents=True, exist_ok=True)
    _poisoned_panel(n_series, seed, quarantine_share).to_parquet(data, index=False)
    settings = synthetic_settings(root, data, n_series, n_candidates, n_shards)
    prepared = create_run_folder(settings)
    folder = RunFolder(Path(prepared["run_dir"]))
    lifecycle = pd.read_parquet(folder.input("lifecycle")).set_index("unique_id")["lifecycle"]
    labels = [c.alias or c.name for c in settings.models.candidates]
    rng = np.random.default_rng(seed)
    for shard in prepared["shards"]:
        history = pd.read_parquet(folder.shard_input(shard)).sort_values(["unique_id", "ds"])
        ledgers, scores, backtests, forecasts = [], [], [], []
        for uid, part in history.groupby("unique_id", sort=True):
            entry, score, rows, forecast = _series_results(
                str(uid), part["ds"].to_numpy(), part["y"].to_numpy(float), str(lifecycle[uid]), settings, labels, rng,
                fallback_share,
            )
            ledgers.append(entry)
            scores += score
            backtests += rows
            if forecast is not None:
                forecasts.append(forecast)
        write_atomic(pd.DataFrame(ledgers), folder.shard_frame(shard, "ledger"))
        write_atomic(pd.DataFrame(scores), folder.shard_frame(shard, "scores"))
        write_atomic(pd.concat(backtests, ignore_index=True), folder.shard_frame(shard, "backtest"))
        write_atomic(pd.concat(forecasts, ignore_index=True), folder.shard_frame(shard, "forecasts"))
        for name in ("calibration", "pools", "candidates"):  # what a real shard learns: not simulated here
            write_atomic(pd.DataFrame(), folder.shard_frame(shard, name))
        folder.write_json(folder.shard_done(shard), {"n_series": len(ledgers), "n_shards": n_shards,
                                                     "series_per_shard": settings.compute.series_per_shard,
                                                     "series_per_batch": settings.compute.series_per_batch})
    summary = combine_shards(folder.path)
    summary["run_dir"] = str(folder.path)
    return summary
