"""retrain_trigger: judge published forecasts against arrived actuals; retrain the degraded cohort.

Runs daily and when the actuals asset is updated. The evaluation and the decision are
recorded in the monitoring tables; a week's cohort triggers weekly_forecast at most once
(deterministic run id retrain__<ISO week>).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import (
    Asset,
    AssetOrTimeSchedule,
    CronTriggerTimetable,
    Param,
    dag,
    get_current_context,
    task,
)

ACTUALS = Asset("forecasting://actuals", group="forecasting")

CONFIG = os.environ.get("FORECASTING_CONFIG") or None


def default_args() -> dict:
    """Retries with exponential backoff on every task (FORECASTING_AIRFLOW_RETRIES / _RETRY_DELAY_SECONDS)."""
    return {
        "owner": "forecasting",
        "retries": int(os.environ.get("FORECASTING_AIRFLOW_RETRIES", "2")),
        "retry_delay": timedelta(seconds=float(os.environ.get("FORECASTING_AIRFLOW_RETRY_DELAY_SECONDS", "60"))),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=30),
        "execution_timeout": timedelta(hours=1),
    }


def as_of_from_context(context: dict, given: str | None) -> str:
    """The run's as-of date: the param, else the logical date, else when the run was due (asset-triggered)."""
    if given:
        return str(given)
    moment = context.get("logical_date") or context["dag_run"].run_after
    return moment.strftime("%Y-%m-%d")


def database_from_connection() -> None:
    """FORECASTING_DATABASE_URL from the Airflow connection ``forecasting_db`` when the environment has none."""
    if os.environ.get("FORECASTING_DATABASE_URL"):
        return
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = Connection.get(os.environ.get("FORECASTING_DATABASE_CONN_ID", "forecasting_db"))
    except AirflowNotFoundException:
        return
    import sqlalchemy as sa

    driver = {"postgres": "postgresql+psycopg", "postgresql": "postgresql+psycopg"}.get(conn.conn_type, conn.conn_type)
    url = sa.URL.create(driver, conn.login, conn.password, conn.host, conn.port, conn.schema)
    os.environ["FORECASTING_DATABASE_URL"] = url.render_as_string(hide_password=False)


@dag(
    dag_id="retrain_trigger",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(os.environ.get("FORECASTING_RETRAIN_SCHEDULE", "0 7 * * *"), timezone="UTC"),
        assets=[ACTUALS],
    ),
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    params={
        "as_of": Param(None, type=["null", "string"], format="date", description="Evaluate the actuals up to this date."),
        "config": Param(CONFIG, type=["null", "string"], description="Settings file (YAML)."),
    },
    tags=["forecasting"],
    doc_md=__doc__,
)
def retrain_trigger():
    @task(multiple_outputs=True, execution_timeout=timedelta(minutes=30))
    def evaluate(params: dict) -> dict:
        database_from_connection()
        from forecasting.orchestration.monitor import evaluate_retraining

        as_of = as_of_from_context(get_current_context(), params.get("as_of"))
        decision = evaluate_retraining(params.get("config"), as_of)
        return {"trigger_run_id": None, "conf": None, **decision}

    @task.short_circuit(execution_timeout=timedelta(minutes=5))
    def degraded_cohort(trigger: bool) -> bool:
        return bool(trigger)

    decision = evaluate()
    retrain = TriggerDagRunOperator(
        task_id="retrain",
        trigger_dag_id="weekly_forecast",
        trigger_run_id=decision["trigger_run_id"],
        conf=decision["conf"],
        skip_when_already_exists=True,
        execution_timeout=timedelta(minutes=5),
    )
    degraded_cohort(decision["trigger"]) >> retrain


retrain_trigger()
