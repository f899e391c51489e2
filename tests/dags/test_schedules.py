"""The DAGs' schedules: none under `make airflow`, cron otherwise; a scheduled run needs a config."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from types import SimpleNamespace

from airflow_env import AIRFLOW_ENV, DAGS

sys.path.insert(0, str(DAGS))
from dag_support import schedule_from_env, unconfigured_schedule  # noqa: E402

_SCRIPT = textwrap.dedent(
    f"""
    import json
    from airflow.dag_processing.dagbag import BundleDagBag
    bag = BundleDagBag(dag_folder={str(DAGS)!r}, bundle_path={str(DAGS)!r})
    print(json.dumps({{d: type(bag.dags[d].timetable).__name__ for d in sorted(bag.dag_ids)}}))
    """
)


def _timetables(**env: str) -> dict[str, str]:
    done = subprocess.run([sys.executable, "-c", _SCRIPT], env={**os.environ, **AIRFLOW_ENV, **env},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    import json

    return json.loads(done.stdout.strip().splitlines()[-1])


def test_no_schedule_means_triggered_runs_only():
    local = _timetables(FORECASTING_WEEKLY_SCHEDULE="none", FORECASTING_RETRAIN_SCHEDULE="none")
    assert local["weekly_forecast"] == "NullTimetable"
    assert local["retrain_trigger"] == "AssetTriggeredTimetable"  # new actuals still start it
    default = _timetables()
    assert default["weekly_forecast"] == "CronTriggerTimetable"
    assert default["retrain_trigger"] == "AssetOrTimeSchedule"


def test_schedule_values(monkeypatch):
    monkeypatch.setenv("SOME_SCHEDULE", "none")
    assert schedule_from_env("SOME_SCHEDULE", "0 6 * * 1") is None
    monkeypatch.setenv("SOME_SCHEDULE", " 0 5 * * 2 ")
    assert schedule_from_env("SOME_SCHEDULE", "0 6 * * 1") == "0 5 * * 2"
    monkeypatch.delenv("SOME_SCHEDULE")
    assert schedule_from_env("SOME_SCHEDULE", "0 6 * * 1") == "0 6 * * 1"


def test_a_scheduled_run_without_settings_is_refused_and_a_triggered_one_is_not():
    scheduled = {"dag_run": SimpleNamespace(run_type="scheduled")}
    assert "FORECASTING_CONFIG" in unconfigured_schedule(scheduled, None)
    assert unconfigured_schedule(scheduled, "config/production.yaml") is None
    assert unconfigured_schedule({"dag_run": SimpleNamespace(run_type="manual")}, None) is None
