"""The retention task: delete run folders (with their checkpoints) and input snapshots older than N weeks.

A run folder whose forecasts are still published (the newest origin of some series) is
kept whatever its age, because monitoring judges those forecasts against their backtest.
The registry versions of deleted runs are pruned by ``prune_registry`` when one is given
(``retention_task`` passes the registry's, which never deletes an aliased version). Before a
run folder goes, ``keep`` is called with it (``retention_task``: its monitoring reference is
stored in the database, so forecasts it published can still be judged).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from forecasting.config import Settings
from forecasting.data.contract import ID
from forecasting.orchestration.run_catalog import Run, RunFolder, runs_dir, snapshots_dir

RegistryPruner = Callable[[list[str]], Any]
Keeper = Callable[[list[Path]], Any]


def _published_run_ids(root: Path) -> set[str]:
    """Run ids of the rows in the newest published table of each series."""
    tables = sorted((root / "forecasts").glob("origin=*.parquet"))
    if not tables:
        return set()
    frame = pd.concat([pd.read_parquet(p, columns=[ID, "forecast_origin", "run_id"]) for p in tables])
    newest = frame["forecast_origin"] == frame.groupby(ID)["forecast_origin"].transform("max")
    return set(frame.loc[newest, "run_id"])


def _as_of(folder: Path) -> pd.Timestamp | None:
    try:
        return RunFolder(folder).read_as_of()
    except (OSError, ValueError, KeyError):
        return None


def expired_runs(root: Path, now: pd.Timestamp, keep_weeks: int) -> list[Path]:
    """Run folders whose as-of date is more than ``keep_weeks`` weeks before ``now``, unless published."""
    limit = pd.Timestamp(now) - pd.Timedelta(weeks=keep_weeks)
    keep = _published_run_ids(root)
    runs = sorted(p for p in runs_dir(root).glob("*") if p.is_dir())
    return [p for p in runs if p.name not in keep and (as_of := _as_of(p)) is not None and as_of < limit]


def expired_snapshots(root: Path, now: pd.Timestamp, keep_weeks: int) -> list[Path]:
    limit = pd.Timestamp(now) - pd.Timedelta(weeks=keep_weeks)
    found = []
    for path in sorted(snapshots_dir(root).glob("*.parquet")):
        try:
            day = pd.Timestamp(path.name.split("-")[0])
        except ValueError:
            continue
        if day < limit:
            found.append(path)
    return found


def _delete(paths: Iterable[Path]) -> None:
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def apply_retention(settings: Settings, now: pd.Timestamp, prune_registry: RegistryPruner | None = None,
                    keep: Keeper | None = None) -> dict[str, Any]:
    """Delete what the policy expires (after ``keep`` saw the run folders); returns the deleted run ids and snapshots."""
    keep_weeks = settings.retention.keep_weeks
    if keep_weeks is None:
        return {"deleted_runs": [], "deleted_snapshots": []}
    root = Path(settings.output.root).resolve()
    runs = expired_runs(root, now, keep_weeks)
    snapshots = expired_snapshots(root, now, keep_weeks)
    kept = keep(runs) if keep is not None and runs else None
    _delete([*runs, *snapshots])
    run_ids = [p.name for p in runs]
    result: dict[str, Any] = {"deleted_runs": run_ids, "deleted_snapshots": [p.name for p in snapshots]}
    if kept is not None:
        result["kept_references"] = kept
    if prune_registry is not None and run_ids:
        result["pruned_versions"] = prune_registry(run_ids)
    return result


def retention_task(run_dir: str) -> dict[str, Any]:
    """The DAG's retention step after a publish: the policy of the run's settings, relative to its
    as-of date; the registry versions of deleted runs go too (never an aliased one), and their
    monitoring references stay in the database."""
    from forecasting.orchestration.monitor import keep_references_before_retention

    run = Run.load(run_dir)
    settings = run.settings
    pruner = None
    if settings.registry.enabled:
        from forecasting.registry.pruning import prune_runs

        pruner = partial(prune_runs, settings)
    keeper = partial(keep_references_before_retention, settings)
    return apply_retention(settings, run.manifest.as_of, pruner, keeper)
