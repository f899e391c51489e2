"""weekly_forecast through dag.test() with Airflow's metadata in PostgreSQL, in its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from postgres import temporary_database

pytestmark = pytest.mark.slow

PROJECT_ROOT = Path(__file__).resolve().parents[2]

_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from airflow.dag_processing.dagbag import BundleDagBag
    bag = BundleDagBag(dag_folder=sys.argv[1], bundle_path=Path(sys.argv[1]))
    assert not bag.import_errors, bag.import_errors
    run = bag.get_dag("weekly_forecast").test(run_conf={"as_of": "2025-12-28", "config": sys.argv[2]})
    states = {ti.task_id + str(ti.map_index): str(ti.state) for ti in run.get_task_instances()}
    print(json.dumps({"state": str(run.state), "tasks": states}))
    """
)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from temporary_database()


def test_weekly_forecast_with_a_postgres_metadata_db(postgres_url: str, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        (PROJECT_ROOT / "config" / "test.yaml").read_text().replace("n_series: 40", "n_series: 12")
        + f"output:\n  root: {tmp_path / 'output'}\n"
    )
    url = sa.make_url(postgres_url)
    env = {
        **{k: v for k, v in os.environ.items() if k != "FORECASTING_DATABASE_URL"},
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres_url,
        # psycopg 3 serves the async engine too (Airflow would otherwise derive asyncpg).
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": postgres_url,
        # The forecast table beside Airflow's tables, its URL from an Airflow connection.
        "AIRFLOW_CONN_FORECASTING_DB": json.dumps(
            {"conn_type": "postgres", "host": url.host, "port": url.port, "login": url.username,
             "password": url.password, "schema": url.database}
        ),
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    airflow = str(Path(sys.executable).with_name("airflow"))
    migrated = subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True, text=True, timeout=600)
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(PROJECT_ROOT / "dags"), str(config)],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["state"] == "success", result
    engine = sa.create_engine(postgres_url)
    with engine.connect() as connection:
        runs = connection.execute(sa.text("SELECT state FROM dag_run WHERE dag_id = 'weekly_forecast'")).scalars().all()
        rows = connection.execute(sa.text("SELECT count(DISTINCT unique_id), count(*) FROM forecasts")).one()
    engine.dispose()
    assert runs == ["success"]
    assert rows[0] >= 10 and rows[1] == 13 * rows[0]
