"""Where the DAGs are and the environment Airflow gets in tests (a temporary AIRFLOW_HOME)."""

from __future__ import annotations

import tempfile
from pathlib import Path

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
