"""The train_shard task: one shard's series, its batches on the configured Dask cluster (or the
embedded one), or serially; the training itself is ``orchestration/shards.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from forecasting.orchestration.run_catalog import Run, RunFolder, read_shard_lifecycle
from forecasting.orchestration.shards import train_global_shard, train_shard


def shard_size(run_dir: str, shard: int) -> int:
    """The number of series of ``shard`` (which names its task in the Airflow UI: "shard 3 (41 series)")."""
    return len(read_shard_lifecycle(RunFolder(Path(run_dir)), shard))


def train_shard_task(run_dir: str, shard: int) -> dict[str, Any]:
    """Train one shard: its batches on the configured Dask cluster (or the embedded one), or serially."""
    run = Run.load(run_dir)
    settings = run.settings
    if settings.compute.executor == "serial":
        return train_shard(run, shard)
    from forecasting.orchestration.executors import dask_client, run_batches_dask

    with dask_client(settings) as client:
        # the shard's global candidates first, as one task on the cluster (not in the Airflow worker)
        client.submit(train_global_shard, run_dir, shard, pure=False).result()
        return train_shard(run, shard, run_batches=lambda tasks: run_batches_dask(client, tasks))
