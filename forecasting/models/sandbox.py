"""Run plug-in code in a sandboxed child process: what it gets, how it is stopped.

Every process that runs plug-in code (training's fits, the conformance kit) is started
here, under ``forecasting.models.sandbox_supervisor``:

- an allow-listed environment: locale, ``PATH``, ``TZ``, the interpreter's ``PYTHONPATH``
  and thread limits; no credentials, tokens or settings of the platform;
- a private temporary folder as working directory, ``HOME`` and ``TMPDIR``, removed afterwards;
- no network (a private network namespace), an address-space limit, and a supervisor
  that kills everything the code started, even what left the process group.

The file system is not hidden: the code runs as the platform's user and can read and
write what that user can.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from forecasting.models.sandbox_supervisor import ENVIRONMENT_KEY

# Passed through from the platform's environment when set; nothing else is.
ALLOWED_ENVIRONMENT = (
    "PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_NUMERIC", "LC_TIME", "LC_COLLATE", "LC_MONETARY",
    "LC_MESSAGES", "TZ", "PYTHONHASHSEED", "PYTHONDONTWRITEBYTECODE", "PYTHONUTF8", "PYTHONIOENCODING",
)
THREAD_LIMITS = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
STOP_GRACE_SECONDS = 10.0  # the supervisor's own clean-up, before its process group is killed outright


def python_path() -> str:
    """This interpreter's ``sys.path`` as PYTHONPATH: a child imports what this process imports."""
    folders = (os.path.abspath(p or os.curdir) for p in sys.path)  # children run in another folder
    return os.pathsep.join(dict.fromkeys(p for p in folders if os.path.isdir(p)))


def sandbox_environment(home: Path | str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The allow-listed environment of a child: nothing secret, ``home`` as HOME and TMPDIR."""
    env = {name: os.environ[name] for name in ALLOWED_ENVIRONMENT if name in os.environ}
    env.setdefault("PATH", os.defpath)
    env.update(THREAD_LIMITS)
    env.update(PYTHONPATH=python_path(), HOME=str(home), TMPDIR=str(home), MPLCONFIGDIR=str(home))
    env.update(extra or {})
    return env


def sandbox_status() -> dict[str, str]:
    """Inside a sandboxed command: what the supervisor enforced (network, processes)."""
    try:
        return dict(json.loads(os.environ.get(ENVIRONMENT_KEY, "{}")))
    except ValueError:
        return {}


@dataclass(frozen=True)
class Exit:
    """How a sandboxed command ended: ``signal`` set when a signal killed it."""

    code: int | None
    signal: str = ""

    def describe(self) -> str:
        return f"killed by signal {self.signal}" if self.signal else f"exit code {self.code}"


TIMED_OUT = object()


class Sandboxed:
    """One running sandboxed command: read its output line by line, stop it and all it started."""

    def __init__(self, process: subprocess.Popen, stderr: IO[bytes]) -> None:
        self.process = process
        self.stderr = stderr
        assert process.stdout is not None
        self._fd = process.stdout.fileno()
        self._buffer = b""
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._fd, selectors.EVENT_READ)

    def next_line(self, seconds: float) -> str | None | object:
        """The next output line; None at the end of the output; ``TIMED_OUT`` after ``seconds``."""
        deadline = time.monotonic() + seconds
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return TIMED_OUT
            if not self._selector.select(timeout=remaining):
                continue
            chunk = os.read(self._fd, 1 << 16)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode("utf-8", errors="replace")

    def exit(self, seconds: float = 10.0) -> Exit | None:
        """How the command ended (None: it closed its output but did not end within ``seconds``)."""
        try:
            code = self.process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return None
        if code < 0:
            try:
                return Exit(None, f"{-code} ({signal.Signals(-code).name})")
            except ValueError:
                return Exit(None, str(-code))
        return Exit(code)

    def stderr_tail(self, size: int = 4096) -> str:
        self.stderr.seek(0, os.SEEK_END)
        self.stderr.seek(max(0, self.stderr.tell() - size))
        return self.stderr.read().decode("utf-8", errors="replace")

    def stop(self) -> None:
        """Stop the command and everything it started (the supervisor kills them), then reap it."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=STOP_GRACE_SECONDS)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # the supervisor's group, should it hang
        self.process.wait()
        self._selector.close()
        if self.process.stdout is not None:
            self.process.stdout.close()


@contextmanager
def sandboxed(command: Sequence[str], memory_limit_mb: int, inputs: Mapping[str, bytes] | None = None,
              environment: dict[str, str] | None = None) -> Iterator[Sandboxed]:
    """Start ``command`` in the sandbox, its private folder holding ``inputs`` (name -> content).

    The command runs in that folder, so it finds its inputs by name. On leaving the block
    the command and everything it started are stopped and the folder is removed.
    """
    with tempfile.TemporaryDirectory(prefix="forecasting-plugin-") as scratch, tempfile.TemporaryFile() as stderr:
        for name, content in (inputs or {}).items():
            (Path(scratch) / name).write_bytes(content)
        supervisor = [sys.executable, "-m", "forecasting.models.sandbox_supervisor", str(memory_limit_mb), "--"]
        process = subprocess.Popen(
            [*supervisor, *command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=scratch,
            env=sandbox_environment(scratch, environment),
            start_new_session=True,  # a Ctrl-C at a terminal reaches the platform, which stops the sandbox
        )
        running = Sandboxed(process, stderr)
        try:
            yield running
        finally:
            running.stop()


_PROBE = "import os, sys; sys.stdout.write(os.environ.get(sys.argv[1], '{}') + '\\n')"


def sandbox_probe(timeout: float = 60.0) -> dict[str, str]:
    """What the sandbox enforces on this machine: ``{"network": ..., "processes": ...}``."""
    with sandboxed([sys.executable, "-c", _PROBE, ENVIRONMENT_KEY], 512) as probe:
        line = probe.next_line(timeout)
        tail = probe.stderr_tail(300).strip()
    try:
        return dict(json.loads(str(line)))
    except (ValueError, TypeError):
        reason = f"probe failed: {tail or line}"
        return {"network": f"not enforced on this machine ({reason})", "processes": f"unknown ({reason})"}
