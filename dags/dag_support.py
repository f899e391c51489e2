"""What both DAGs share: default task arguments, the run's as-of date, the database URL.

Airflow puts the DAGs folder on sys.path, so the DAG files import this module by name.
Airflow-only code lives here rather than in the forecasting package, which never imports Airflow.
"""

from __future__ import annotations

import os
from datetime import timedelta

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


def schedule_from_env(name: str, default: str) -> str | None:
    """A cron schedule from the environment variable ``name``; "none" (or empty) means no schedule:
    the DAG runs only when triggered (what ``make airflow`` sets)."""
    value = os.environ.get(name, default).strip()
    return None if value.lower() in ("", "none", "null", "off") else value


def unconfigured_schedule(context: dict, config: str | None) -> str | None:
    """Why a scheduled run must not start (None: it may): a run the scheduler started on its own
    needs a settings file, so that unpausing a DAG never forecasts the built-in demo panel into
    the default output root. Triggered runs are left alone."""
    run_type = getattr(context["dag_run"], "run_type", "")
    if str(getattr(run_type, "value", run_type)) != "scheduled" or config:
        return None
    return ("scheduled run without a settings file: set FORECASTING_CONFIG for the scheduler and workers "
            "(or trigger the DAG with the param config); nothing was run")


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


def operator_choice(context: dict, params: dict) -> dict | None:
    """The champion choice an operator made in the run's params, with who (the triggering user) and why."""
    champion, pin = params.get("champion") or "decide", bool(params.get("pin"))
    if champion == "decide" and not pin:
        return None
    reason = (params.get("reason") or "").strip()
    if not reason:
        raise ValueError("params champion / pin need a reason")
    by = getattr(context.get("dag_run"), "triggering_user_name", None) or "airflow"
    return {"champion": champion, "pin": pin, "by": by, "reason": reason}
