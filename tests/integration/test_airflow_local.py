"""`make airflow` (scripts/airflow_local.sh) for real: every socket its services listen on is on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.slow

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = PROJECT_ROOT / "scripts" / "airflow_local.sh"
LOOPBACK = {"127.0.0.1", "::1"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening(sessions: set[int]) -> list[tuple[str, str, int]]:
    """(process name, address, port) of every listening socket of the processes in these sessions."""
    found = []
    for process in psutil.process_iter(["pid", "name"]):
        try:
            if os.getsid(process.pid) not in sessions:
                continue
            for connection in process.net_connections(kind="inet"):
                if connection.status == psutil.CONN_LISTEN:
                    found.append((process.info["name"], connection.laddr.ip, connection.laddr.port))
        except (psutil.Error, ProcessLookupError, PermissionError):
            continue
    return found


def test_make_airflow_listens_on_loopback_only(tmp_path):
    home = tmp_path / "airflow_home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "FORECASTING"))}
    env.update(AIRFLOW_HOME=str(home), AIRFLOW_PORT=str(_free_port()), DASK_PORT=str(_free_port()),
               DASK_DASHBOARD_PORT=str(_free_port()), DASK_WORKERS="0", FORECASTING__OUTPUT__ROOT=str(tmp_path / "out"))
    try:
        started = subprocess.run(["bash", str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=420)
        assert started.returncode == 0, started.stderr + "".join(p.read_text()[-2000:] for p in (home / "logs").glob("*.log"))
        sessions = {int(p.read_text()) for p in (home / "pids").glob("*.pid")}
        names = {p.stem for p in (home / "pids").glob("*.pid")}
        assert {"airflow-scheduler", "airflow-triggerer", "airflow-dag-processor", "airflow-api-server"} <= names
        assert all(psutil.pid_exists(pid) for pid in sessions), "a service died after starting"
        listening = _listening(sessions)
        assert any(port == int(env["AIRFLOW_PORT"]) for _, _, port in listening), listening
        exposed = [entry for entry in listening if entry[1] not in LOOPBACK]
        assert exposed == [], f"listening beyond loopback: {exposed}"
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True, text=True, timeout=120)
