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
from dataclasses import dataclass
from typing import Any

from forecasting.config import Settings
from forecasting.orchestration.run_catalog import Run
from forecasting.orchestration.shards import (
    BatchTask,
    complete_shard,
    shard_batches,
    shard_checkpoint,
    train_global_shard,
    train_series_batch,
)

_embedded_cluster: Any = None


def _shared_local_cluster(settings: Settings) -> Any:
    """The process's embedded LocalCluster, started on first use."""
    global _embedded_cluster
    if _embedded_cluster is None:
        import dask
        from distributed import LocalCluster

        # distributed is imported before the config is set (the import adds its defaults). The
        # workers inherit the ignored SIGINT (a Ctrl-C stops this process, which closes them) and the config.
        with _sigint_ignored(), dask.config.set({"distributed.worker.profile.enabled": settings.compute.worker_profiling}):
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


@dataclass(frozen=True)
class Task:
    """``function(*args)``, run once the tasks named in ``after`` have finished."""

    key: str
    function: Callable[..., dict[str, Any]]
    args: tuple[Any, ...]
    after: tuple[str, ...] = ()


TaskDone = Callable[[Task, dict[str, Any]], None]


class SerialBackend:
    """Runs the tasks one after another in this process, in the order given (each after those it waits for)."""

    def run(self, tasks: Sequence[Task], on_done: TaskDone | None = None) -> dict[str, dict[str, Any]]:
        results: dict[str, dict[str, Any]] = {}
        for task in tasks:
            results[task.key] = task.function(*task.args)
            if on_done:
                on_done(task, results[task.key])
        return results


def _after(function: Callable[..., dict[str, Any]], args: tuple[Any, ...], *finished: Any) -> dict[str, Any]:
    """``function(*args)``; ``finished``: the results of the tasks it waited for (Dask passes them in)."""
    return function(*args)


class DaskBackend:
    """Submits every task to a Dask cluster at once, each waiting for its ``after`` tasks on the
    cluster; a task lost with its worker is rerun elsewhere."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def run(self, tasks: Sequence[Task], on_done: TaskDone | None = None) -> dict[str, dict[str, Any]]:
        from distributed import as_completed

        futures: dict[str, Any] = {}
        for task in tasks:
            waits = [futures[key] for key in task.after]
            futures[task.key] = self.client.submit(_after, task.function, task.args, *waits, key=task.key, pure=False)
        by_key = {task.key: task for task in tasks}
        results: dict[str, dict[str, Any]] = {}
        for future in as_completed(list(futures.values()), loop=self.client.loop):
            results[future.key] = future.result()
            if on_done:
                on_done(by_key[future.key], results[future.key])
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


def shard_tasks(run_dir: str, shard: int, batches: Sequence[BatchTask]) -> list[Task]:
    """A shard's work: its global step, its batches after it, its completion after them."""
    name = os.path.basename(run_dir)
    first = Task(f"global-{name}-{shard}", train_global_shard, (run_dir, shard))
    steps = [Task(f"batch-{name}-{shard}-{batch}", train_series_batch, (run_dir, shard, batch, series), (first.key,))
             for _, _, batch, series in batches]
    last = Task(f"complete-{name}-{shard}", complete_shard, (run_dir, shard), tuple(t.key for t in steps) or (first.key,))
    return [first, *steps, last]


def run_shards(settings: Settings, run: Run | str, shards: Sequence[int], on_series_done: Callable[[int], None] | None = None,
               notify: Notify | None = None) -> list[dict[str, Any]]:
    """Train a run's shards (the CLI: all of them; an Airflow task: its one shard); the one shard executor.

    Per shard: its global candidates (one task, fitted across its series), its batches once
    that is done, and its completion (calibrate, combine, select) once they are in. On Dask
    every shard's tasks are submitted at once, so no worker waits at a shard boundary and
    shards complete on the workers while others still train. Finished shards and batches of
    an earlier attempt are skipped. Returns one result per shard, in order.
    ``notify``: where the dashboard link and the embedded workers' warnings are printed.
    """
    run = Run.of(run)
    run_dir = str(run.path)
    done = {s: shard_checkpoint(run, s) for s in shards}
    pending = [s for s in shards if done[s] is None]
    completed: dict[int, dict[str, Any]] = {}
    if pending:
        tasks = [task for shard in pending for task in shard_tasks(run_dir, shard, shard_batches(run, shard))]

        def progress(task: Task, result: dict[str, Any]) -> None:
            if task.function is train_series_batch and on_series_done:
                on_series_done(result["n_series"])
            if task.function is complete_shard:
                completed[int(task.args[1])] = result

        with open_backend(settings, notify) as backend:
            backend.run(tasks, progress)
    return [completed[s] if s in completed else {"shard": s, "skipped": True, **(done[s] or {})} for s in shards]
