"""Run the shards of a run: one after another here, or as tasks on a Dask cluster.

With ``compute.scheduler_address`` set, tasks go to that cluster; otherwise an
embedded ``LocalCluster`` (127.0.0.1, one single-threaded worker process per
core, a free dashboard port) is started once per process. Workers read their
shard's input from the run folder and write their results there, so only ids
and paths travel through Dask.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from forecasting.config import Settings
from forecasting.orchestration.pipeline import train_shard

ShardDone = Callable[[dict[str, Any]], None]

_embedded_cluster: Any = None


def _shared_local_cluster(settings: Settings) -> Any:
    """The process's embedded LocalCluster, started on first use."""
    global _embedded_cluster
    if _embedded_cluster is None:
        from distributed import LocalCluster

        _embedded_cluster = LocalCluster(
            n_workers=settings.compute.n_workers or os.cpu_count() or 1,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            memory_limit=settings.compute.worker_memory_limit,
        )
    return _embedded_cluster


def shutdown_embedded_cluster() -> None:
    """Stop the embedded cluster if this process started one."""
    global _embedded_cluster
    if _embedded_cluster is not None:
        _embedded_cluster.close()
        _embedded_cluster = None


@contextmanager
def dask_client(settings: Settings) -> Iterator[Any]:
    """A client for the configured scheduler, or for the embedded cluster."""
    from distributed import Client

    address = settings.compute.scheduler_address
    target = address if address else _shared_local_cluster(settings)
    with Client(target, set_as_default=False) as client:
        if settings.compute.progress:
            print(f"dask dashboard: {client.dashboard_link}", file=sys.stderr)
        yield client


def run_shards_serial(run_dir: str, shards: Sequence[int], on_series_done: Callable[[], None] | None) -> list[dict[str, Any]]:
    return [train_shard(run_dir, shard, on_series_done) for shard in shards]


def run_shards_dask(settings: Settings, run_dir: str, shards: Sequence[int], on_shard_done: ShardDone | None) -> list[dict[str, Any]]:
    """Each shard is one Dask task; results (small dicts) come back as they finish."""
    from distributed import as_completed

    with dask_client(settings) as client:
        futures = [
            client.submit(train_shard, run_dir, shard, key=f"train_shard-{os.path.basename(run_dir)}-{shard}", pure=False)
            for shard in shards
        ]
        results = []
        for future in as_completed(futures, loop=client.loop):
            result = future.result()
            results.append(result)
            if on_shard_done:
                on_shard_done(result)
    return sorted(results, key=lambda r: r["shard"])
