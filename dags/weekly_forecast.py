"""weekly_forecast: prepare -> train_shard (one mapped task per shard) -> finalize (and register) -> publish
-> report -> retention.

Each task is one call into forecasting.orchestration.steps; XCom carries ids and paths only: prepare
returns the run's shards (what train_shard is mapped over) and hands on the run folder as the
XCom "run_dir", which every later task takes; the order of the later steps is declared with >>.
Params: as_of (default: the logical date, or when an asset-triggered run was due),
series (a subset: its own run id, replacing only those series' rows), config (the settings file:
it names the environment's input, output root, forecast table and MLflow experiment and model),
and an operator's champion choice for this run's version: champion (decide: the rule; promote;
keep: challenger), pin (freeze the champion afterwards) and reason (required with either);
the triggering user is recorded as who decided.

Schedule: FORECASTING_WEEKLY_SCHEDULE (cron, default Mondays 06:00 UTC; "none": triggered runs
only, as under `make airflow`). A scheduled run needs a settings file (FORECASTING_CONFIG or the
config param); without one it skips, so unpausing never forecasts the demo panel by surprise.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Asset, Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException
from airflow.task.trigger_rule import TriggerRule
from dag_support import (
    CONFIG,
    as_of_from_context,
    database_from_connection,
    default_args,
    operator_choice,
    schedule_from_env,
    unconfigured_schedule,
)

FORECAST_TABLE = Asset("forecasting://forecast_table", group="forecasting")


@dag(
    dag_id="weekly_forecast",
    schedule=schedule_from_env("FORECASTING_WEEKLY_SCHEDULE", "0 6 * * 1"),
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=2,
    default_args=default_args(),
    params={
        "as_of": Param(None, type=["null", "string"], format="date", description="Forecast origin (YYYY-MM-DD)."),
        "series": Param(None, type=["null", "array"], items={"type": "string"}, description="Subset of series ids."),
        "config": Param(CONFIG, type=["null", "string"],
                        description="Settings file (YAML) of the environment to run, e.g. config/staging.yaml."),
        "champion": Param("decide", enum=["decide", "promote", "keep"],
                          description="This run's version: decide by the rule, promote it, or keep it challenger."),
        "pin": Param(False, type="boolean", description="Pin the champion after this run's decision."),
        "reason": Param(None, type=["null", "string"], description="Why (required with champion promote/keep or pin)."),
    },
    tags=["forecasting"],
    doc_md=__doc__,
)
def weekly_forecast():
    @task(execution_timeout=timedelta(minutes=30))
    def prepare(params: dict) -> list[int]:
        context = get_current_context()
        refused = unconfigured_schedule(context, params.get("config"))
        if refused:
            raise AirflowSkipException(refused)
        from forecasting.orchestration.steps.prepare import prepare_task

        scheduled = as_of_from_context(context, None)
        prepared = prepare_task(params.get("config"), params.get("as_of"), params.get("series"), scheduled)
        context["ti"].xcom_push(key="run_dir", value=prepared["run_dir"])
        return prepared["shards"]

    # Named in the UI by its shard and size ("shard 3 (41 series)"): the size is put into the
    # context before training, so that a shard that fails is named too.
    @task(execution_timeout=timedelta(hours=2), max_active_tis_per_dagrun=8,
          map_index_template="shard {{ task.op_kwargs['shard'] }} ({{ shard_series }} series)")
    def train_shard(run_dir: str, shard: int) -> dict:
        from forecasting.orchestration.steps.train_shard import shard_size, train_shard_task

        get_current_context()["shard_series"] = shard_size(run_dir, shard)
        return train_shard_task(run_dir, shard)

    # Runs when some shards failed after their retries: their series fall back and are reported.
    @task(execution_timeout=timedelta(minutes=30), trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS)
    def finalize(run_dir: str, params: dict) -> dict:
        from forecasting.orchestration.steps.finalize import finalize_task

        summary = finalize_task(run_dir, operator_choice(get_current_context(), params))
        return {
            "run_dir": run_dir,
            "run_id": summary["run_id"],
            "failed_shards": summary.get("failed_shards", []),
            "mlflow": summary.get("mlflow", {}),
        }

    @task(execution_timeout=timedelta(minutes=15), outlets=[FORECAST_TABLE])
    def publish(run_dir: str) -> dict:
        database_from_connection()
        from forecasting.orchestration.steps.publish import publish_task

        return publish_task(run_dir)

    @task(execution_timeout=timedelta(minutes=15))
    def report(run_dir: str) -> dict:
        from forecasting.orchestration.steps.report import report_task

        return report_task(run_dir)

    @task(execution_timeout=timedelta(minutes=15))
    def retention(run_dir: str) -> dict:
        from forecasting.orchestration.steps.retention import retention_task

        return retention_task(run_dir)

    shards = prepare()
    run_dir = shards["run_dir"]
    trained = train_shard.partial(run_dir=run_dir).expand(shard=shards)
    trained >> finalize(run_dir) >> publish(run_dir) >> report(run_dir) >> retention(run_dir)


weekly_forecast()
