"""The train_shard task: one shard's global step and batches on the one shard executor
(``orchestration/executors.py``: the configured Dask cluster, the embedded one, or serially)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from forecasting.orchestration.executors import run_shards
from forecasting.orchestration.run_catalog import Run, RunFolder, read_shard_lifecycle


def shard_size(run_dir: str, shard: int) -> int:
    """The number of series of ``shard`` (which names its task in the Airflow UI: "shard 3 (41 series)")."""
    return len(read_shard_lifecycle(RunFolder(Path(run_dir)), shard))


def train_shard_task(run_dir: str, shard: int) -> dict[str, Any]:
    """Train one shard (skipped when an earlier attempt finished it); its result counts."""
    run = Run.load(run_dir)
    return run_shards(run.settings, run, [shard])[0]
