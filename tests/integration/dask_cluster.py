"""A real Dask cluster for tests: `dask scheduler` and `dask worker` processes on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

DASK = Path(sys.executable).parent / "dask"


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


@dataclass
class DaskCluster:
    """A scheduler and worker processes, each in its own process group (killable as a whole)."""

    workdir: Path
    n_workers: int = 2
    scheduler: subprocess.Popen | None = None
    workers: list[subprocess.Popen] = field(default_factory=list)

    @property
    def scheduler_file(self) -> Path:
        return self.workdir / "scheduler.json"

    @property
    def address(self) -> str:
        return json.loads(self.scheduler_file.read_text())["address"]

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env["DASK_TEMPORARY_DIRECTORY"] = str(self.workdir / "dask-tmp")
        env["TMPDIR"] = str(self.workdir / "tmp")
        (self.workdir / "tmp").mkdir(parents=True, exist_ok=True)
        return env

    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen:
        log = open(self.workdir / log_name, "ab")  # noqa: SIM115 - the process owns it
        return subprocess.Popen(
            [str(DASK), *args], stdout=log, stderr=subprocess.STDOUT, env=self._environment(), start_new_session=True
        )

    def start(self) -> DaskCluster:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.scheduler_file.unlink(missing_ok=True)
        self.scheduler = self._spawn(
            ["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(self.scheduler_file)],
            "scheduler.log",
        )
        _wait_for(self.scheduler_file.exists, 60, "the dask scheduler")
        self.workers = [self.start_worker(i) for i in range(self.n_workers)]
        self.wait_for_workers(self.n_workers)
        return self

    def start_worker(self, index: int) -> subprocess.Popen:
        return self._spawn(
            ["worker", "--scheduler-file", str(self.scheduler_file), "--host", "127.0.0.1", "--nthreads", "1",
             "--nworkers", "1", "--no-dashboard", "--memory-limit", "2GiB", "--name", f"worker-{index}"],
            f"worker-{index}.log",
        )

    def wait_for_workers(self, count: int) -> None:
        from distributed import Client

        with Client(self.address, timeout=30) as client:
            client.wait_for_workers(count, timeout=90)

    def kill_worker(self, index: int) -> None:
        """SIGKILL a worker and its nanny at once, as when its machine dies."""
        os.killpg(self.workers[index].pid, signal.SIGKILL)
        self.workers[index].wait(timeout=30)

    def stop(self) -> None:
        processes = [*self.workers, *([self.scheduler] if self.scheduler else [])]
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
        for process in processes:
            process.wait(timeout=30)
