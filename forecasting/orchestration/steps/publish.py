"""The publish task: the run's forecast rows into the table of its origin (Parquet) and the SQL table, atomically."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd

from forecasting.data.contract import ID, PUBLISHED_STATUSES, STATUS_ENDED
from forecasting.data.database import database_engine
from forecasting.orchestration.run_catalog import Run, RunFolder
from forecasting.orchestration.stage_times import record_stage_time
from forecasting.orchestration.steps.register import versioned_table
from forecasting.publishing.sql import SqlCommitPoint
from forecasting.publishing.table import publish_table, recover_publications, write_atomic


def publish_task(run_dir: str) -> dict[str, Any]:
    """Publish the run's forecasts: the Parquet table of its origin and the SQL table."""
    started = time.perf_counter()
    run = Run.load(run_dir)
    published = publish_forecasts(run)
    record_stage_time(run_dir, "publish", time.perf_counter() - started)
    return {**published, "run_id": run.run_id, "as_of": run.manifest.as_of.isoformat()}


def publish_forecasts(run: Run | str | Path) -> dict[str, Any]:
    """Publish the run's forecasts: the SQL table (the commit point, when enabled), then the Parquet
    table of its origin.

    A series this run could not forecast (quarantined) keeps the rows an earlier run of the same
    origin published: the ledger marks them stale. Ended series lose theirs.
    """
    run = Run.of(run)
    folder, settings = run.folder, run.settings
    # stamped with the registered version; the champion's forecasts when this run is only challenger
    table, source = versioned_table(run, pd.read_parquet(folder.output("forecasts")))
    ledger = pd.read_parquet(folder.output("ledger"))
    replaceable = ledger.loc[ledger["status"].isin([*PUBLISHED_STATUSES, STATUS_ENDED]), ID].astype(str)
    as_of = run.manifest.as_of
    commit_point = None
    if settings.database.enabled:
        commit_point = SqlCommitPoint(database_engine(settings), settings.database.forecast_table,
                                      settings.forecast.quantiles)
    recover_publications(folder.output_root, commit_point)
    published = publish_table(table, folder.output_root, replaceable.tolist(), as_of, commit_point)
    stale = _mark_published(folder, ledger, set(replaceable), published.table)
    result: dict[str, Any] = {"published": str(published.path), "rows": int(len(table)),
                              "publication": published.publication, **source}
    if published.sql_rows is not None:
        result["sql_rows"] = published.sql_rows
    if stale:
        result["stale_series"] = stale
    return result


def _mark_published(folder: RunFolder, ledger: pd.DataFrame, replaced: set[str], merged: pd.DataFrame) -> int:
    """The ledger's ``published`` column: yes (this run's rows), stale (an earlier run's rows kept), no."""
    runs = merged.drop_duplicates(ID).set_index(ID)["run_id"]
    ids = ledger[ID].astype(str)
    kept = ~ids.isin(replaced) & ids.isin(runs.index)
    marks = pd.Series("no", index=ledger.index, dtype=object)
    marks[ids.isin(replaced) & ids.isin(runs.index)] = "yes"
    marks[kept] = "stale: the rows of run " + ids[kept].map(runs).astype(str) + " are kept"
    write_atomic(ledger.assign(published=marks), folder.output("ledger"))
    return int(kept.sum())
