"""Run the batches of a run's shards: in this process, or as tasks on a Dask cluster.

With ``compute.scheduler_address`` set, tasks go to that cluster; otherwise an
embedded ``LocalCluster`` (127.0.0.1, one single-threaded worker process per
core, a memory limit, a free dashboard port) is started once per process.
Workers read their batch's input from the run folder and write their results
there, so only ids and paths travel through Dask.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from forecasting.config import Settings
from forecasting.orchestration.run_catalog import Run
from forecasting.orchestration.shards import (
    BatchTask,
    complete_shard,
    shard_batches,
    shard_is_done,
    train_global_shard,
    train_series_batch,
    train_shard,
)

BatchDone = Callable[[dict[str, Any]], None]

_embedded_cluster: Any = None


def _shared_local_cluster(settings: Settings) -> Any:
    """The process's embedded LocalCluster, started on first use."""
    global _embedded_cluster
    if _embedded_cluster is None:
        from distributed import LocalCluster

        with _sigint_ignored():  # the workers inherit it: a Ctrl-C stops this process, which closes them
            _embedded_cluster = LocalCluster(
                n_workers=settings.compute.n_workers or os.cpu_count() or 1,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address="127.0.0.1:0",
                memory_limit=settings.compute.worker_memory_limit,
            )
    return _embedded_cluster


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored while the block starts child processes (only the main thread can change it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def shutdown_embedded_cluster() -> None:
    """Stop the embedded cluster if this process started one."""
    global _embedded_cluster
    if _embedded_cluster is not None:
        _embedded_cluster.close()
        _embedded_cluster = None


Notify = Callable[[str], None]


@contextmanager
def dask_client(settings: Settings, notify: Notify | None = None) -> Iterator[Any]:
    """A client for the configured scheduler, or for the embedded cluster.

    ``notify``: prints a line without breaking a progress bar (for example ``tqdm.write``); the
    embedded cluster's workers then send their warnings to it (each distinct one once) instead
    of writing them into the bar.
    """
    from distributed import Client

    address = settings.compute.scheduler_address
    target = address if address else _shared_local_cluster(settings)
    say = notify or (lambda text: print(text, file=sys.stderr))
    with Client(target, set_as_default=False) as client:
        if settings.compute.progress:
            say(f"dask dashboard: {client.dashboard_link}")
        if notify is not None and not address:
            from forecasting.orchestration.worker_messages import TOPIC, ForwardMessages

            seen: set[str] = set()

            def show(event: tuple[float, Any]) -> None:
                text = str(event[1])
                if text not in seen:
                    seen.add(text)
                    notify(text)

            client.subscribe_topic(TOPIC, show)
            client.register_plugin(ForwardMessages())
        yield client


def run_batches_dask(client: Any, tasks: Sequence[BatchTask], on_batch_done: BatchDone | None = None) -> list[dict[str, Any]]:
    """Submit every batch as one task; a task lost with its worker is rerun elsewhere."""
    from distributed import as_completed

    futures = [
        client.submit(train_series_batch, *task, key=f"batch-{os.path.basename(task[0])}-{task[1]}-{task[2]}", pure=False)
        for task in tasks
    ]
    results = []
    for future in as_completed(futures, loop=client.loop):
        result = future.result()
        results.append(result)
        if on_batch_done:
            on_batch_done(result)
    return results


def run_shards(settings: Settings, run: Run | str, shards: Sequence[int], on_series_done: Callable[[int], None] | None = None,
               notify: Notify | None = None) -> list[dict[str, Any]]:
    """Train every unfinished shard of a run with the configured executor.

    On Dask, the batches of all shards go to the cluster at once, so no worker
    waits at a shard boundary; each shard is completed once its batches are in.
    ``notify``: where the dashboard link and the embedded workers' warnings are printed.
    """
    run = Run.of(run)
    run_dir = str(run.path)
    pending = [s for s in shards if not shard_is_done(run, s)]
    if settings.compute.executor == "serial":
        return [train_shard(run, s, on_series_done=(lambda: on_series_done(1)) if on_series_done else None) for s in pending]
    tasks = [task for shard in pending for task in shard_batches(run, shard)]
    with dask_client(settings, notify) as client:
        # Global candidates first: one task per shard, fitted across the shard's series.
        client.gather([client.submit(train_global_shard, run_dir, s, key=f"global-{os.path.basename(run_dir)}-{s}", pure=False)
                       for s in pending])
        run_batches_dask(client, tasks, (lambda r: on_series_done(r["n_series"])) if on_series_done else None)
    return [complete_shard(run, s) for s in pending]
