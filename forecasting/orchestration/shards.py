"""Train the shards of a run, batch by batch, with checkpoints at both levels.

A shard (the unit Airflow maps over and retries) is cut into batches of
``compute.series_per_batch`` series (the unit of a Dask task). Each batch reads
its series from the shard's input file and writes their raw backtest forecasts to
its own folder; once every batch is in, ``complete_shard`` calibrates, combines and
selects over the whole shard (its series are the pools that calibration and the
ensemble learn from). A ``_SUCCESS`` file marks a finished batch or shard, and a
rerun of the same run skips them. Checkpoints count only for the same layout (shard
count and batch size).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from forecasting.activation.verdicts import activate_plugins
from forecasting.config import Settings
from forecasting.data.contract import ID
from forecasting.data.covariates import covariate_spec, load_covariates
from forecasting.orchestration.batching import series_per_batch
from forecasting.orchestration.run_catalog import Run, RunFolder, read_shard_lifecycle
from forecasting.publishing.table import write_atomic
from forecasting.training.batch import BatchRaw, backtest_batch, demand_type
from forecasting.training.global_step import (
    global_candidates,
    outcomes_frame,
    outcomes_from_frame,
    train_global,
)
from forecasting.training.plan import TrainingPlan
from forecasting.training.selection_step import ShardResult, concat_frames, select_shard

RESULT_FRAMES = ShardResult.FRAMES
RAW_FRAMES = ("raw", "notes")

BatchTask = tuple[str, int, int, list[str]]  # run_dir, shard, batch, series ids


def _layout(settings: Settings) -> dict[str, int]:
    compute = settings.compute
    return {"n_shards": compute.n_shards, "series_per_shard": compute.series_per_shard,
            "series_per_batch": compute.series_per_batch}


def _done(folder: RunFolder, marker: Path, settings: Settings) -> dict[str, Any] | None:
    """The marker's content if it is a valid checkpoint for this layout."""
    if not marker.exists():
        return None
    content = folder.read_json(marker)
    return content if all(content.get(k) == v for k, v in _layout(settings).items()) else None


@lru_cache(maxsize=8)
def _plan(run_dir: str) -> TrainingPlan:
    """The training plan of a run, built once per worker process, after its plug-ins are activated."""
    settings = Run.load(run_dir).settings
    activate_plugins(settings)  # their cached verdicts (create_run_folder checked them)
    return TrainingPlan.from_settings(settings)


def train_global_shard(run: Run | str | Path, shard: int) -> dict[str, Any]:
    """Fit the shard's global candidates across its series (before its batches); skipped when done.

    Writes ``global/outcomes.parquet`` (forecasts per series, candidate and history
    length) and ``global/_SUCCESS`` (per candidate: parameters, tuning, seconds).
    """
    run = Run.of(run)
    folder, settings = run.folder, run.settings
    done = _done(folder, folder.global_done(shard), settings)
    plan = _plan(str(run.path))
    if done is not None or not global_candidates(plan):
        return {"shard": shard, "skipped": True, **(done or {})}
    history = pd.read_parquet(folder.shard_input(shard))
    history = history.sort_values([ID, "ds"], kind="stable").reset_index(drop=True)
    ids = sorted(history[ID].unique())
    lifecycle = read_shard_lifecycle(folder, shard)
    active = lifecycle[lifecycle["lifecycle"] != "ended"]
    demands = {str(uid): demand_type(str(c)) for uid, c in zip(active[ID], active["demand_class"], strict=True)}
    covariates = load_covariates(covariate_spec(settings), ids, settings.forecast.freq, settings.forecast.horizon)
    result = train_global(history, demands, plan, settings.forecast.freq, covariates,
                          settings.tuning.n_trials, settings.tuning.seed)
    write_atomic(outcomes_frame(result.outcomes, plan.quantiles), folder.global_outcomes(shard))
    content = {"models": result.info, **_layout(settings)}
    folder.write_json(folder.global_done(shard), content)
    return {"shard": shard, "skipped": False, **content}


def _global_outcomes(folder: RunFolder, shard: int, series: list[str], settings: Settings) -> dict[str, Any]:
    path = folder.global_outcomes(shard)
    if not global_candidates(_plan(str(folder.path))):
        return {}
    if _done(folder, folder.global_done(shard), settings) is None:
        raise RuntimeError(f"run {folder.run_id} shard {shard}: the global step has not finished")
    frame = pd.read_parquet(path, filters=[(ID, "in", series)])
    return outcomes_from_frame(frame, tuple(settings.forecast.quantiles))


def shard_batches(run: Run | str | Path, shard: int) -> list[BatchTask]:
    """The shard's series cut into batches, in a stable order."""
    run = Run.of(run)
    folder, settings = run.folder, run.settings
    ids = pd.read_parquet(folder.shard_input(shard), columns=[ID])[ID]
    series = sorted(ids.unique())
    size = series_per_batch(_plan(str(run.path)), len(series), settings.compute.series_per_batch)
    return [(str(run.path), shard, i, series[start : start + size]) for i, start in enumerate(range(0, len(series), size))]


def train_series_batch(run_dir: str, shard: int, batch: int, series: list[str]) -> dict[str, Any]:
    """Backtest one batch of series (one Dask task); skipped when already done."""
    run = Run.load(run_dir)
    folder, settings = run.folder, run.settings
    done = _done(folder, folder.batch_done(shard, batch), settings)
    if done is not None:
        return {"shard": shard, "batch": batch, "skipped": True, **done}
    history = pd.read_parquet(folder.shard_input(shard), filters=[(ID, "in", series)])
    history = history.sort_values([ID, "ds"], kind="stable").reset_index(drop=True)
    lifecycle = read_shard_lifecycle(folder, shard, series)
    precomputed = _global_outcomes(folder, shard, series, settings)
    result = backtest_batch(history, lifecycle, _plan(str(run.path)), precomputed)
    for name in RAW_FRAMES:
        write_atomic(getattr(result, name), folder.batch_frame(shard, batch, name))
    counts = {"n_series": len(series), **_layout(settings)}
    folder.write_json(folder.batch_done(shard, batch), counts)
    return {"shard": shard, "batch": batch, "skipped": False, **counts}


def _read_raw(folder: RunFolder, shard: int, batches: Sequence[int]) -> BatchRaw:
    return BatchRaw.concat([BatchRaw(**{name: pd.read_parquet(folder.batch_frame(shard, b, name)) for name in RAW_FRAMES})
                            for b in batches])


def _read_results(folder: RunFolder, shards: Sequence[int], names: Sequence[str]) -> ShardResult:
    # one frame at a time: only that frame's per-shard parts are held beside the result
    return ShardResult(**{name: concat_frames([pd.read_parquet(folder.shard_frame(s, name)) for s in shards])
                          if name in names else pd.DataFrame() for name in RESULT_FRAMES})


def complete_shard(run: Run | str | Path, shard: int) -> dict[str, Any]:
    """Choose over a shard's finished batches: calibrate, combine, select, gate; mark the shard done."""
    run = Run.of(run)
    folder, settings = run.folder, run.settings
    tasks = shard_batches(run, shard)
    unfinished = [b for _, _, b, _ in tasks if _done(folder, folder.batch_done(shard, b), settings) is None]
    if unfinished:
        raise RuntimeError(f"run {folder.run_id} shard {shard}: batches {unfinished} have not finished")
    raw = _read_raw(folder, shard, [b for _, _, b, _ in tasks])
    history = pd.read_parquet(folder.shard_input(shard))
    history = history.sort_values([ID, "ds"], kind="stable").reset_index(drop=True)
    lifecycle = read_shard_lifecycle(folder, shard)
    result = select_shard(raw, history, lifecycle, _plan(str(run.path)), settings.forecast.freq, shard=shard)
    for name in RESULT_FRAMES:
        write_atomic(getattr(result, name), folder.shard_frame(shard, name))
    counts = {"n_series": len(result.ledger), "n_batches": len(tasks), **_layout(settings)}
    folder.write_json(folder.shard_done(shard), counts)
    return {"shard": shard, "skipped": False, **counts}


def finished_series(run: Run | str | Path, shard: int) -> int:
    """Series of a shard that an earlier attempt of this run already trained (0 if not done)."""
    run = Run.of(run)
    done = _done(run.folder, run.folder.shard_done(shard), run.settings)
    return int(done["n_series"]) if done else 0


def shard_checkpoint(run: Run | str | Path, shard: int) -> dict[str, Any] | None:
    """The shard's ``_SUCCESS`` content when an earlier attempt of this run finished it, else None."""
    run = Run.of(run)
    return _done(run.folder, run.folder.shard_done(shard), run.settings)


def read_shard_results(folder: RunFolder, shards: Sequence[int], names: Sequence[str] = RESULT_FRAMES) -> ShardResult:
    """The shards' results of a run (the frames ``names``, the others left empty); every shard must be done."""
    missing = [s for s in shards if not folder.shard_done(s).exists()]
    if missing:
        raise RuntimeError(f"run {folder.run_id}: shards {missing} have not finished")
    return _read_results(folder, shards, names)
