"""The sandbox supervisor, on real processes: whatever the command starts dies with it.

Each case starts a command that launches sleepers leaving its process group (``setsid``, and
a double fork that re-parents them), then ends the command in a different way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from forecasting.models.sandbox import (
    ALLOWED_ENVIRONMENT,
    sandbox_environment,
    sandbox_probe,
    sandboxed,
)

TOKEN = "forecasting-sandbox-unit-sleeper"
SPAWN = f"""
import os, subprocess, sys, time
sleeper = [sys.executable, "-I", "-S", "-c", "import time; time.sleep(600)", "{TOKEN}"]
subprocess.Popen(sleeper, start_new_session=True)
pid = os.fork()
if pid == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, sleeper)
    os._exit(0)
os.waitpid(pid, 0)
print("started", flush=True)
"""


def _sleepers() -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if TOKEN.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
            except OSError:
                continue
    return found


def _wait_until_gone(seconds: float = 5.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while _sleepers() and time.monotonic() < deadline:
        time.sleep(0.1)
    return _sleepers()


def _supervise(tail: str, *options: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "forecasting.models.sandbox_supervisor", "512", *options, "--",
               sys.executable, "-c", SPAWN + tail]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True, start_new_session=True,
                            env=sandbox_environment("/tmp"))


@pytest.fixture(autouse=True)
def _no_sleepers_before_or_after():
    assert _sleepers() == []
    yield
    for pid in _sleepers():
        os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("options", [(), ("--no-pid-namespace",)], ids=["pid-namespace", "subreaper-only"])
def test_a_command_that_ends_takes_what_it_started_along(options):
    process = _supervise("sys.exit(5)", *options)
    assert process.stdout.readline().strip() == "started"
    assert process.wait(timeout=30) == 5  # the command's own exit code
    assert _wait_until_gone() == []


@pytest.mark.parametrize("options", [(), ("--no-pid-namespace",)], ids=["pid-namespace", "subreaper-only"])
def test_stopping_the_supervisor_stops_what_the_command_started(options):
    process = _supervise("time.sleep(600)", *options)
    assert process.stdout.readline().strip() == "started"
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    assert _wait_until_gone() == []


def test_even_a_killed_supervisor_takes_everything_along_in_a_pid_namespace():
    process = _supervise("time.sleep(600)")
    assert process.stdout.readline().strip() == "started"
    assert "process-id namespace" in sandbox_probe()["processes"]
    process.kill()  # SIGKILL: no clean-up code runs; the kernel does it
    process.wait(timeout=30)
    assert _wait_until_gone() == []


def test_a_crash_is_reported_as_the_commands_signal():
    with sandboxed([sys.executable, "-c", "import ctypes; ctypes.string_at(0)"], 512) as child:
        assert child.next_line(60) is None
        ended = child.exit()
    assert ended is not None and ended.signal == "11 (SIGSEGV)"


def test_the_environment_is_allow_listed(monkeypatch):
    monkeypatch.setenv("FORECASTING_DATABASE_URL", "postgresql://u:secret@db/x")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "secret")
    monkeypatch.setenv("LANG", "C.UTF-8")
    env = sandbox_environment("/tmp/private")
    assert set(env) <= {*ALLOWED_ENVIRONMENT, "PYTHONPATH", "HOME", "TMPDIR", "MPLCONFIGDIR",
                        "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"}
    assert env["LANG"] == "C.UTF-8" and env["HOME"] == env["TMPDIR"] == "/tmp/private"
    assert "secret" not in str(env)


def test_the_network_is_out_of_reach():
    probe = sandbox_probe()
    assert probe["network"].startswith("enforced"), probe
    code = "import socket\ntry:\n    socket.create_connection(('1.1.1.1', 53), timeout=2); print('reached')\nexcept OSError as e:\n    print(type(e).__name__)"
    with sandboxed([sys.executable, "-c", code], 512) as child:
        line = child.next_line(60)
    assert line in ("OSError", "TimeoutError", "ConnectionRefusedError")
