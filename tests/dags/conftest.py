"""Airflow in tests: AIRFLOW_HOME in a temporary folder, set before anything imports airflow."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from airflow_env import AIRFLOW_ENV, AIRFLOW_HOME

os.environ.update(AIRFLOW_ENV)


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
