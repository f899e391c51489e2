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

from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from forecasting.activation.verdicts import activate_plugins
from forecasting.config import Settings
from forecasting.data.covariates import covariate_spec, load_covariates
from forecasting.orchestration.batching import series_per_batch
from forecasting.orchestration.run_folder import RunFolder, load_run, read_shard_lifecycle
from forecasting.publishing.table import write_atomic
from forecasting.training.batch import BatchRaw, backtest_batch, demand_type
from forecasting.training.global_step import (
    global_candidates,
    outcomes_frame,
    outcomes_from_frame,
    train_global,
)
from forecasting.training.plan import TrainingPlan
from forecasting.training.selection_step import ShardResult, select_shard

RESULT_FRAMES = ShardResult.FRAMES
RAW_FRAMES = ("raw", "notes")

BatchTask = tuple[str, int, int, list[str]]  # run_dir, shard, batch, series ids
BatchRunner = Callable[[Sequence[BatchTask]], list[dict[str, Any]]]


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
    _, _, settings = load_run(run_dir)
    activate_plugins(settings)  # their cached verdicts (prepare_run checked them)
    return TrainingPlan.from_settings(settings)


def _global_dir(folder: RunFolder, shard: int) -> Path:
    return folder.shard_dir(shard) / "global"


def train_global_shard(run_dir: str, shard: int) -> dict[str, Any]:
    """Fit the shard's global candidates across its series (before its batches); skipped when done.

    Writes ``global/outcomes.parquet`` (forecasts per series, candidate and history
    length) and ``global/_SUCCESS`` (per candidate: parameters, tuning, seconds).
    """
    folder, _, settings = load_run(run_dir)
    out = _global_dir(folder, shard)
    done = _done(folder, out / "_SUCCESS", settings)
    plan = _plan(str(run_dir))
    if done is not None or not global_candidates(plan):
        return {"shard": shard, "skipped": True, **(done or {})}
    history = pd.read_parquet(folder.shard_input(shard))
    history = history.sort_values(["unique_id", "ds"], kind="stable").reset_index(drop=True)
    ids = sorted(history["unique_id"].unique())
    lifecycle = read_shard_lifecycle(folder, shard)
    active = lifecycle[lifecycle["lifecycle"] != "ended"]
    demands = {str(uid): demand_type(str(c)) for uid, c in zip(active["unique_id"], active["demand_class"], strict=True)}
    covariates = load_covariates(covariate_spec(settings), ids, settings.forecast.freq, settings.forecast.horizon)
    result = train_global(history, demands, plan, settings.forecast.freq, covariates,
                          settings.tuning.n_trials, settings.tuning.seed)
    write_atomic(outcomes_frame(result.outcomes, plan.quantiles), out / "outcomes.parquet")
    content = {"models": result.info, **_layout(settings)}
    folder.write_json(out / "_SUCCESS", content)
    return {"shard": shard, "skipped": False, **content}


def _global_outcomes(folder: RunFolder, shard: int, series: list[str], settings: Settings) -> dict[str, Any]:
    path = _global_dir(folder, shard) / "outcomes.parquet"
    if not global_candidates(_plan(str(folder.path))):
        return {}
    if _done(folder, _global_dir(folder, shard) / "_SUCCESS", settings) is None:
        raise RuntimeError(f"run {folder.run_id} shard {shard}: the global step has not finished")
    frame = pd.read_parquet(path, filters=[("unique_id", "in", series)])
    return outcomes_from_frame(frame, tuple(settings.forecast.quantiles))


def shard_batches(run_dir: str, shard: int) -> list[BatchTask]:
    """The shard's series cut into batches, in a stable order."""
    folder, _, settings = load_run(run_dir)
    ids = pd.read_parquet(folder.shard_input(shard), columns=["unique_id"])["unique_id"]
    series = sorted(ids.unique())
    size = series_per_batch(_plan(str(run_dir)), len(series), settings.compute.series_per_batch)
    return [(str(run_dir), shard, i, series[start : start + size]) for i, start in enumerate(range(0, len(series), size))]


def train_series_batch(
    run_dir: str, shard: int, batch: int, series: list[str], on_series_done: Callable[[], None] | None = None
) -> dict[str, Any]:
    """Backtest one batch of series (one Dask task); skipped when already done."""
    folder, _, settings = load_run(run_dir)
    out = folder.batch_dir(shard, batch)
    done = _done(folder, out / "_SUCCESS", settings)
    if done is not None:
        return {"shard": shard, "batch": batch, "skipped": True, **done}
    history = pd.read_parquet(folder.shard_input(shard), filters=[("unique_id", "in", series)])
    history = history.sort_values(["unique_id", "ds"], kind="stable").reset_index(drop=True)
    lifecycle = read_shard_lifecycle(folder, shard, series)
    precomputed = _global_outcomes(folder, shard, series, settings)
    result = backtest_batch(history, lifecycle, _plan(str(run_dir)), precomputed)
    for name in RAW_FRAMES:
        write_atomic(getattr(result, name), out / f"{name}.parquet")
    if on_series_done:
        for _ in series:
            on_series_done()
    counts = {"n_series": len(series), **_layout(settings)}
    folder.write_json(out / "_SUCCESS", counts)
    return {"shard": shard, "batch": batch, "skipped": False, **counts}


def _read_raw(directories: Sequence[Path]) -> BatchRaw:
    return BatchRaw.concat([BatchRaw(**{name: pd.read_parquet(d / f"{name}.parquet") for name in RAW_FRAMES})
                            for d in directories])


def _read_results(directories: Sequence[Path]) -> ShardResult:
    parts = [ShardResult(**{name: pd.read_parquet(d / f"{name}.parquet") for name in RESULT_FRAMES}) for d in directories]
    return ShardResult.concat(parts)


def complete_shard(run_dir: str, shard: int) -> dict[str, Any]:
    """Choose over a shard's finished batches: calibrate, combine, select, gate; mark the shard done."""
    folder, _, settings = load_run(run_dir)
    tasks = shard_batches(run_dir, shard)
    unfinished = [b for _, _, b, _ in tasks if _done(folder, folder.batch_dir(shard, b) / "_SUCCESS", settings) is None]
    if unfinished:
        raise RuntimeError(f"run {folder.run_id} shard {shard}: batches {unfinished} have not finished")
    raw = _read_raw([folder.batch_dir(shard, b) for _, _, b, _ in tasks])
    history = pd.read_parquet(folder.shard_input(shard))
    history = history.sort_values(["unique_id", "ds"], kind="stable").reset_index(drop=True)
    lifecycle = read_shard_lifecycle(folder, shard)
    result = select_shard(raw, history, lifecycle, _plan(str(run_dir)), settings.forecast.freq, shard=shard)
    for name in RESULT_FRAMES:
        write_atomic(getattr(result, name), folder.shard_dir(shard) / f"{name}.parquet")
    counts = {"n_series": len(result.ledger), "n_batches": len(tasks), **_layout(settings)}
    folder.write_json(folder.shard_done(shard), counts)
    return {"shard": shard, "skipped": False, **counts}


def run_batches_serial(tasks: Sequence[BatchTask], on_series_done: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    return [train_series_batch(*task, on_series_done=on_series_done) for task in tasks]


def train_shard(
    run_dir: str | Path,
    shard: int,
    run_batches: BatchRunner | None = None,
    on_series_done: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Train every series of one shard (the Airflow task); a finished shard is skipped.

    ``run_batches`` runs the shard's batch tasks (for example on Dask); by default
    they run one after another in this process.
    """
    folder, _, settings = load_run(run_dir)
    done = _done(folder, folder.shard_done(shard), settings)
    if done is not None:
        return {"shard": shard, "skipped": True, **done}
    train_global_shard(str(run_dir), shard)
    tasks = shard_batches(str(run_dir), shard)
    if run_batches is None:
        run_batches_serial(tasks, on_series_done)
    else:
        run_batches(tasks)
    return complete_shard(str(run_dir), shard)


def finished_series(run_dir: str, shard: int) -> int:
    """Series of a shard that an earlier attempt of this run already trained (0 if not done)."""
    folder, _, settings = load_run(run_dir)
    done = _done(folder, folder.shard_done(shard), settings)
    return int(done["n_series"]) if done else 0


def shard_is_done(run_dir: str, shard: int) -> bool:
    folder, _, settings = load_run(run_dir)
    return _done(folder, folder.shard_done(shard), settings) is not None


def read_shard_results(folder: RunFolder, shards: Sequence[int]) -> ShardResult:
    """All shards' results of a run; every shard must be done."""
    missing = [s for s in shards if not folder.shard_done(s).exists()]
    if missing:
        raise RuntimeError(f"run {folder.run_id}: shards {missing} have not finished")
    return _read_results([folder.shard_dir(s) for s in shards])
