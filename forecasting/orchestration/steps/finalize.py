"""The finalize task: the shards combined into the run's ledger, leaderboard, scores and forecast
rows (the series of a shard that failed after its retries fall back), the circuit breaker, and the
run's registration (``steps/register.py``)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecasting.data.contract import ID, STATUS_NOT_STARTED, STATUS_QUARANTINED, quantile_labels
from forecasting.data.validation import check_forecast_breaker
from forecasting.orchestration.failed_shards import failed_shards, fallback_results
from forecasting.orchestration.run_catalog import Run, RunFolder
from forecasting.orchestration.shards import read_shard_results
from forecasting.orchestration.stage_times import record_stage_time
from forecasting.orchestration.steps.register import register
from forecasting.publishing.table import build_forecast_table, concat_parquet_atomic, write_atomic
from forecasting.training.selection_step import ShardResult, concat_frames


def finalize_task(run_dir: str, operator: dict[str, Any] | None = None) -> dict[str, Any]:
    """Combine the shards (the series of shards that failed after their retries fall back), check
    the circuit breaker, then register the run's bundle version (``operator``: a person's champion
    choice, see ``register``)."""
    started = time.perf_counter()
    run = Run.load(run_dir)
    folder, settings = run.folder, run.settings
    failed = failed_shards(run, run.manifest.shards)
    healthy = [s for s in run.manifest.shards if s not in failed]
    summary = combine_shards(run, healthy, [fallback_results(run, shard) for shard in failed])
    if failed:
        ledger = pd.read_parquet(folder.output("ledger"), columns=[ID, "reason"])
        summary["failed_shards"] = failed
        summary["failed_shard_series"] = sorted(ledger.loc[ledger["reason"] == "shard_failed", ID])
        folder.write_json(folder.summary, summary)
    # The breaker counts every series without a publishable forecast, before anything is registered or published.
    check_forecast_breaker(pd.read_parquet(folder.output("ledger"), columns=[ID, "status", "reason"]),
                           settings.validation.max_quarantine_share)
    registration = register(run, operator)  # {} with the registry disabled; adds "mlflow" to summary.json
    if registration:
        summary["mlflow"] = {k: registration[k] for k in ("tracking_uri", "model_name", "version", "alias")}
    record_stage_time(run_dir, "finalize", time.perf_counter() - started)
    return summary


def _leaderboard(parts: Sequence[Path | pd.DataFrame], ledger: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard from the scores' parts, read one at a time (a series' scores are all in one part)."""
    winners = ledger.set_index(ID)["winner"] if "winner" in ledger else pd.Series(dtype=object)  # no series chose
    boards = [_part_leaderboard(pd.read_parquet(part) if isinstance(part, Path) else part, winners) for part in parts]
    filled = [board for board in boards if not board.empty]
    if not filled:
        return _part_leaderboard(pd.DataFrame(), winners)
    return pd.concat(filled, ignore_index=True).sort_values([ID, "rank"]).reset_index(drop=True)


def _part_leaderboard(scores: pd.DataFrame, winners: pd.Series) -> pd.DataFrame:
    """Mean backtest scores per series x candidate, ranked, with the winner flagged."""
    if scores.empty:  # typed: readers filter on is_winner and sort on the losses
        return _with_columns(scores.iloc[0:0], {ID: "object", "candidate": "object", **_SCORE_COLUMNS,
                                               "n_windows": "int64", "rank": "int64", "is_winner": "bool"})
    board = (
        scores.groupby([ID, "candidate"], sort=True)
        .agg(
            scaled_quantile_loss=("scaled_quantile_loss", "mean"),
            mase=("mase", "mean"),
            coverage=("coverage", "mean"),
            n_windows=("cutoff", "nunique"),
        )
        .reset_index()
    )
    board["is_winner"] = board["candidate"].to_numpy() == board[ID].map(winners).to_numpy()
    board["rank"] = board.groupby(ID)["scaled_quantile_loss"].rank(method="first").astype("int64")
    return board.sort_values([ID, "rank"]).reset_index(drop=True)


_SMALL_FRAMES = ("forecasts", "ledger", "calibration", "pools")  # the others are copied shard by shard
_KEYS = {ID: "object", "candidate": "object", "cutoff": "datetime64[ns]"}
_SCORE_COLUMNS = {"scaled_quantile_loss": "float64", "mase": "float64", "coverage": "float64"}


def _with_columns(frame: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """An empty frame gets the columns (and types) its readers select; a non-empty one is kept as is."""
    if not frame.empty:
        return frame
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in columns.items()})


def _quarantine_ledger(quarantine: pd.DataFrame) -> pd.DataFrame:
    frame = quarantine.copy()
    frame["status"] = STATUS_QUARANTINED
    return frame


def combine_shards(run: Run | str | Path, shards: Sequence[int] | None = None,
                   extra: Sequence[ShardResult] = ()) -> dict[str, Any]:
    """Combine the shards into the run's ledger, leaderboard, scores and forecasts.

    ``shards``: the finished shards whose checkpoints are read (by default every shard);
    ``extra``: results assembled otherwise (the fallbacks of failed shards). The backtest
    and the candidates' forecasts, a run's largest frames, and the scores are copied shard by
    shard into their files and never held whole; the leaderboard is built one shard at a time.
    """
    run = Run.of(run)
    folder, manifest, settings = run.folder, run.manifest, run.settings
    shards = list(manifest.shards if shards is None else shards)
    combined = ShardResult.concat([read_shard_results(folder, shards, _SMALL_FRAMES), *extra])
    quarantine = pd.read_parquet(folder.input("quarantine"))
    parts = [combined.ledger, _quarantine_ledger(quarantine)]
    if folder.input("not_started").exists():  # every input series is in the ledger, those after as_of too
        parts.append(pd.read_parquet(folder.input("not_started")).assign(status=STATUS_NOT_STARTED))
    ledger = pd.concat([p for p in parts if not p.empty] or parts[:1], ignore_index=True)
    ledger = ledger.sort_values(ID).reset_index(drop=True)
    for column in ("reason", "detail", "winner", "model", "ensemble_members", "repairs", "failures", "lifecycle",
                   "selection", "cost_skipped"):
        if column in ledger:
            ledger[column] = ledger[column].fillna("").astype(str)
    score_parts = [*(folder.shard_frame(s, "scores") for s in shards), *(e.scores for e in extra)]
    leaderboard = _leaderboard(score_parts, ledger)
    table = build_forecast_table(
        combined.forecasts, manifest.as_of, folder.run_id, settings.forecast.quantiles
    )
    labels = quantile_labels(settings.forecast.quantiles)
    outputs = {
        "ledger": ledger,
        "leaderboard": leaderboard,
        "forecasts": table,
        "calibration": combined.calibration,
        "pools": combined.pools,
    }
    for name, frame in outputs.items():
        write_atomic(frame, folder.output(name))
    # with their columns even when no series was backtested (a horizon longer than every history)
    empty = {"scores": _with_columns(pd.DataFrame(), {**_KEYS, **_SCORE_COLUMNS}),
             "backtest": _with_columns(pd.DataFrame(), {**_KEYS, "ds": "datetime64[ns]", "y": "float64",
                                                        **dict.fromkeys(labels, "float64")})}
    for name in ("scores", "backtest", "candidates"):
        parts = [*(folder.shard_frame(s, name) for s in shards), *(getattr(e, name) for e in extra)]
        if not concat_parquet_atomic(parts, folder.output(name)):  # no rows: the columns its readers select
            first = pd.read_parquet(parts[0]) if parts and isinstance(parts[0], Path) else concat_frames(parts)
            write_atomic(empty.get(name, first), folder.output(name))
    summary = summarize(ledger, leaderboard)
    estimate = out_of_sample_summary(combined.pools)
    if estimate:
        summary["out_of_sample"] = estimate
    coverage = coverage_summary(combined.calibration, settings.forecast.quantiles)
    if coverage:
        summary["calibration"] = coverage
    global_models = _global_models(folder, manifest.shards)
    if global_models:
        summary["global_models"] = global_models
    if manifest.plugin_isolation:
        summary["plugin_isolation"] = manifest.plugin_isolation
    summary.update(
        run_id=folder.run_id,
        as_of=manifest.as_of.isoformat(),
        **{name: str(folder.output(name)) for name in ("forecasts", "ledger", "leaderboard")},
    )
    folder.write_json(folder.summary, summary)
    return summary


def _global_models(folder: RunFolder, shards: Sequence[int]) -> dict[str, Any]:
    """Per shard, what each global candidate was fitted with (parameters, tuning, seconds)."""
    found = {}
    for shard in shards:
        marker = folder.global_done(shard)
        if marker.exists():
            found[str(shard)] = folder.read_json(marker)["models"]
    return found


def out_of_sample_summary(pools: pd.DataFrame) -> dict[str, Any]:
    """The selection procedure's own loss on the latest backtest window, chosen on the earlier ones.

    Means over the pools' series of the scaled quantile loss on that window: the procedure
    (``selected``), the ensemble, each single candidate; empty when no pool had two windows.
    """
    if pools.empty or "out_of_sample" not in pools:
        return {}
    parts = [json.loads(text) for text in pools["out_of_sample"] if text and text != "{}"]
    parts = [p for p in parts if p.get("n_series")]
    if not parts:
        return {}
    n = sum(p["n_series"] for p in parts)
    labels = [k for k in parts[0] if k not in ("n_series", "window", "switched_series")]

    def mean(key: str) -> float | None:
        pairs = [(p[key], p["n_series"]) for p in parts if key in p and p[key] is not None and np.isfinite(p[key])]
        weight = sum(w for _, w in pairs)
        return float(sum(v * w for v, w in pairs) / weight) if weight else None

    return {
        "what": "mean scaled quantile loss on each series' latest backtest window, of choices made on its earlier "
                "windows only (calibration, ensemble weights and selection included)",
        "n_series": int(n),
        "switched_series": int(sum(p.get("switched_series", 0) for p in parts)),
        "loss": {label: mean(label) for label in labels},
    }


def coverage_summary(calibration: pd.DataFrame, quantiles: Sequence[float]) -> dict[str, Any]:
    """Forward-only backtest coverage of the outermost quantile pair: per candidate, and per step of the ensemble."""
    if calibration.empty:
        return {}
    nominal = round(float(max(quantiles) - min(quantiles)), 6)
    weighted = calibration.assign(hits=calibration["coverage"] * calibration["n_windows"])
    weighted = weighted[weighted["n_windows"] > 0]
    by_candidate = weighted.groupby("candidate")[["hits", "n_windows"]].sum()
    per_candidate = (by_candidate["hits"] / by_candidate["n_windows"]).dropna()
    ensemble = weighted[weighted["candidate"] == "Ensemble"].groupby("step")[["hits", "n_windows"]].sum()
    return {
        "nominal": nominal,
        "coverage_by_candidate": {str(k): round(float(v), 4) for k, v in per_candidate.items()},
        "ensemble_coverage_by_step": {int(k): round(float(v), 4) for k, v in (ensemble["hits"] / ensemble["n_windows"]).dropna().items()},
    }


def summarize(ledger: pd.DataFrame, leaderboard: pd.DataFrame) -> dict[str, Any]:
    """Counts by status, the winner mix, and the winners' in-sample backtest loss against the naive baseline."""
    counts = {str(k): int(v) for k, v in ledger["status"].value_counts().sort_index().items()}
    models = ledger["model"].fillna("") if "model" in ledger else pd.Series(dtype=object)
    winner_mix = {str(k): int(v) for k, v in models[models != ""].value_counts().items()}
    summary: dict[str, Any] = {"counts": counts, "winner_mix": winner_mix, "n_series": int(len(ledger))}
    if not leaderboard.empty:
        winners = leaderboard[leaderboard["is_winner"]].set_index(ID)["scaled_quantile_loss"]
        naive = leaderboard[leaderboard["candidate"] == "Naive"].set_index(ID)["scaled_quantile_loss"]
        both = winners.index.intersection(naive.index)
        if len(both):
            summary["backtest_loss"] = {
                "what": "in sample: the mean loss of each series' choice on the very windows that chose it",
                "series_compared": int(len(both)),
                "winner_mean_scaled_quantile_loss": float(winners[both].mean()),
                "naive_mean_scaled_quantile_loss": float(naive[both].mean()),
            }
    return summary
