"""Ctrl-C on the real console script: a clean stop, the JSON line, exit code 130, nothing left running.

SIGINT goes to the command's whole process group, as a terminal sends it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONSOLE_SCRIPT = Path(sys.executable).with_name("forecasting")
EXIT_INTERRUPTED = 130  # as shells report a SIGINT


def _group(pgid: int) -> list[int]:
    """Processes of the process group (the command and, on Dask, its workers)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_bytes()
            except OSError:
                continue
            if int(stat[stat.rfind(b")") + 2 :].split()[2]) == pgid:
                found.append(int(entry))
    return found


def _processes_in(folder: Path) -> list[str]:
    """Processes whose working folder lies under ``folder`` (the sandboxes' private folders do)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cwd = os.readlink(f"/proc/{entry}/cwd")
            except OSError:
                continue
            if cwd.startswith(str(folder)):
                found.append(f"{entry}: {Path(f'/proc/{entry}/cmdline').read_bytes()[:120]!r}")
    return found


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One conformance verdict cache for both runs: the plug-in's kit runs once."""
    return tmp_path_factory.mktemp("verdicts")


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["serial", "dask"])
def test_ctrl_c_stops_a_run_cleanly_with_exit_code_130(tmp_path, executor, verdicts):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    config = tmp_path / "config.yaml"
    config.write_text(
        "demo: {n_series: 20, n_periods: 104}\n"
        "models: {candidates: [{name: AutoETS}, {name: Naive}, {name: SeasonalMovingAverage}]}\n"
        f"compute: {{executor: {executor}, n_workers: 1, n_shards: 2, series_per_batch: 2, progress: false}}\n"
        f"plugins: {{verdict_cache: {verdicts}}}\n"
        f"output: {{root: {tmp_path / 'out'}}}\nregistry: {{enabled: false}}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORECASTING")}
    env["TMPDIR"] = str(scratch)
    process = subprocess.Popen([str(CONSOLE_SCRIPT), "run", "--config", str(config), "--json"], cwd=PROJECT_ROOT,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not list((tmp_path / "out").glob("runs/*/shards/*/batches/*")) and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()
            time.sleep(0.2)
        time.sleep(1.0)  # well inside training, plug-in children running
        os.killpg(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == EXIT_INTERRUPTED, err[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert result == {"error": "interrupted (Ctrl-C)", "error_type": "KeyboardInterrupt", "exit_code": 130}
    assert "Traceback" not in err, err[-3000:]
    deadline = time.monotonic() + 10
    while (_group(process.pid) or _processes_in(scratch)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _group(process.pid) == [] and _processes_in(scratch) == []
