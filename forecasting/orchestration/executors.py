"""The one shard executor: a run's shards, their global step and batches, in this process
(serial backend) or as tasks on a Dask cluster (Dask backend); the CLI and the Airflow task both use it.

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
    complete_shard,
    shard_batches,
    shard_checkpoint,
    train_global_shard,
    train_series_batch,
)

TaskDone = Callable[[dict[str, Any]], None]

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


class SerialBackend:
    """Runs the tasks one after another in this process."""

    def run(self, function: Callable[..., dict[str, Any]], calls: Sequence[tuple[Any, ...]], keys: Sequence[str],
            on_done: TaskDone | None = None) -> list[dict[str, Any]]:
        results = []
        for call in calls:
            results.append(function(*call))
            if on_done:
                on_done(results[-1])
        return results


class DaskBackend:
    """Runs every task on a Dask cluster at once; a task lost with its worker is rerun elsewhere."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def run(self, function: Callable[..., dict[str, Any]], calls: Sequence[tuple[Any, ...]], keys: Sequence[str],
            on_done: TaskDone | None = None) -> list[dict[str, Any]]:
        from distributed import as_completed

        futures = [self.client.submit(function, *call, key=key, pure=False) for call, key in zip(calls, keys, strict=True)]
        results = []
        for future in as_completed(futures, loop=self.client.loop):
            results.append(future.result())
            if on_done:
                on_done(results[-1])
        return results


Backend = SerialBackend | DaskBackend


@contextmanager
def open_backend(settings: Settings, notify: Notify | None = None) -> Iterator[Backend]:
    """The configured backend: ``compute.executor`` serial, or Dask (``dask_client``)."""
    if settings.compute.executor == "serial":
        yield SerialBackend()
        return
    with dask_client(settings, notify) as client:
        yield DaskBackend(client)


def run_shards(settings: Settings, run: Run | str, shards: Sequence[int], on_series_done: Callable[[int], None] | None = None,
               notify: Notify | None = None) -> list[dict[str, Any]]:
    """Train a run's shards (the CLI: all of them; an Airflow task: its one shard); the one shard executor.

    Global candidates first (one task per shard, fitted across its series), then the
    batches of every shard at once, so that no worker waits at a shard boundary; each
    shard is completed (calibrate, combine, select) once its batches are in. Finished
    shards and batches of an earlier attempt are skipped. Returns one result per shard, in order.
    ``notify``: where the dashboard link and the embedded workers' warnings are printed.
    """
    run = Run.of(run)
    run_dir, name = str(run.path), os.path.basename(str(run.path))
    done = {s: shard_checkpoint(run, s) for s in shards}
    pending = [s for s in shards if done[s] is None]
    if pending:
        tasks = [task for shard in pending for task in shard_batches(run, shard)]
        with open_backend(settings, notify) as backend:
            backend.run(train_global_shard, [(run_dir, s) for s in pending], [f"global-{name}-{s}" for s in pending])
            backend.run(train_series_batch, tasks, [f"batch-{name}-{shard}-{batch}" for _, shard, batch, _ in tasks],
                        (lambda result: on_series_done(result["n_series"])) if on_series_done else None)
    completed = {s: complete_shard(run, s) for s in pending}
    return [completed[s] if s in completed else {"shard": s, "skipped": True, **(done[s] or {})} for s in shards]
