"""Airflow in tests: AIRFLOW_HOME in a temporary folder, set before anything imports airflow."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DAGS = PROJECT_ROOT / "dags"
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="forecasting-airflow-"))

AIRFLOW_ENV = {
    "AIRFLOW_HOME": str(AIRFLOW_HOME),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
    "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME / 'airflow.db'}",
    # One retry after one second: the failed-shard test exercises the retry path quickly.
    "FORECASTING_AIRFLOW_RETRIES": "1",
    "FORECASTING_AIRFLOW_RETRY_DELAY_SECONDS": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
}
os.environ.update(AIRFLOW_ENV)
if str(DAGS) not in sys.path:
    sys.path.insert(0, str(DAGS))


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata database for this test session."""
    subprocess.run(
        [str(Path(sys.executable).with_name("airflow")), "db", "migrate"],
        env={**os.environ, **AIRFLOW_ENV},
        check=True,
        capture_output=True,
        timeout=300,
    )
    return AIRFLOW_HOME
