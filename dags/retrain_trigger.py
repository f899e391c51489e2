"""retrain_trigger: judge published forecasts against arrived actuals; retrain the degraded cohort.

Runs daily (FORECASTING_RETRAIN_SCHEDULE; "none": only on actuals) and when the actuals asset
is updated. The evaluation and the decision are recorded in the monitoring tables; a week's
cohort triggers weekly_forecast at most once (deterministic run id retrain__<ISO week>).
"""

from __future__ import annotations

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
from dag_support import (
    CONFIG,
    as_of_from_context,
    database_from_connection,
    default_args,
    schedule_from_env,
)

ACTUALS = Asset("forecasting://actuals", group="forecasting")
# "none": only when the actuals asset is updated (what `make airflow` sets)
SCHEDULE = schedule_from_env("FORECASTING_RETRAIN_SCHEDULE", "0 7 * * *")

@dag(
    dag_id="retrain_trigger",
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable(SCHEDULE, timezone="UTC"), assets=[ACTUALS])
    if SCHEDULE else [ACTUALS],
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
