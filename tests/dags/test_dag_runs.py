"""weekly_forecast and retrain_trigger through Airflow's dag.test() (one process, SQLite metadata DB).

The story, in order (the tests share one output root and one Airflow database):
1. weekly_forecast publishes the demo panel's forecasts for origin 2025-12-14;
2. a run whose shard 1 has a corrupt checkpoint still publishes every other series (an older
   origin than the champion's: an operator's param promotes its version, recorded with who and why);
3. two weeks of actuals arrive with a level shift in three series: retrain_trigger's CUSUM
   (points of both published origins, all their horizons) marks exactly those, triggers
   weekly_forecast once with exactly them, and nothing more on a re-evaluation of the same week;
4. the triggered subset retrain runs through weekly_forecast with that conf.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from airflow_env import DAGS
from prometheus_format import parse

from forecasting.data.demo import generate_demo_panel

pytestmark = pytest.mark.slow

TEST_CONFIG = Path(__file__).resolve().parents[2] / "config" / "test.yaml"
ORIGIN = "2025-12-14"
WEEKS = ["2025-12-21", "2025-12-28"]
SHIFTED = ["SKU-0004", "SKU-0011", "SKU-0027"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, airflow_db: Path) -> dict:
    """Snapshots of the demo panel per as-of date (a level shift after the origin) and a config."""
    base = tmp_path_factory.mktemp("world")
    # Seed 7 under the default monitoring settings (a CUSUM per series): the unshifted series'
    # promotions and holiday ramps do not accumulate to a degradation, the shifted ones do.
    panel = generate_demo_panel(40, 104, "W-SUN", "2025-12-28", 7)
    spread = panel.groupby("unique_id")["y"].transform(lambda y: y.diff().abs().mean())
    shift = panel["unique_id"].isin(SHIFTED) & (panel["ds"] > pd.Timestamp(ORIGIN))
    panel.loc[shift, "y"] += 15 * spread[shift] + 20
    snapshots = base / "snapshots"
    snapshots.mkdir()
    for day in ["2025-12-07", ORIGIN, *WEEKS]:
        panel[panel["ds"] <= day].to_parquet(snapshots / f"{day}.parquet")
    config = base / "config.yaml"
    settings = yaml.safe_load(TEST_CONFIG.read_text())
    settings["output"] = {"root": str(base / "output")}
    settings["source"] = {"path_template": f"{snapshots}/{{as_of:%Y-%m-%d}}.parquet"}
    settings["registry"] = {"enabled": True}  # the embedded MLflow store under the output root
    config.write_text(yaml.safe_dump(settings))
    return {"config": str(config), "root": base / "output", "panel": panel}


def _bag():
    from airflow.dag_processing.dagbag import BundleDagBag

    bag = BundleDagBag(dag_folder=str(DAGS), bundle_path=DAGS)
    assert bag.import_errors == {}
    return bag


def _states(run) -> dict[str, list[str]]:
    states: dict[str, list[str]] = {}
    for ti in sorted(run.get_task_instances(), key=lambda t: (t.task_id, t.map_index)):
        states.setdefault(ti.task_id, []).append(str(ti.state))
    return states


def _xcom(run, task_id: str, key: str = "return_value"):
    ti = next(t for t in run.get_task_instances() if t.task_id == task_id)
    return ti.xcom_pull(task_ids=task_id, key=key)


def _sql(world: dict, query: str) -> pd.DataFrame:
    engine = sa.create_engine(f"sqlite:///{world['root'] / 'forecasting.db'}")
    with engine.connect() as connection:
        return pd.read_sql(sa.text(query), connection)


def test_weekly_forecast_publishes_every_series(world: dict) -> None:
    run = _bag().get_dag("weekly_forecast").test(run_conf={"as_of": ORIGIN, "config": world["config"]})
    states = _states(run)
    assert str(run.state) == "success", states
    assert states["train_shard"] == ["success"] * 3
    published = _xcom(run, "publish")
    run_dir = world["root"] / "runs" / published["run_id"]
    ledger = pd.read_parquet(run_dir / "ledger.parquet")
    parquet = pd.read_parquet(published["published"])
    sql = _sql(world, f"SELECT * FROM forecasts WHERE forecast_origin = '{ORIGIN} 00:00:00.000000'")
    forecastable = set(ledger.loc[ledger["status"].isin(["ok", "fallback", "new"]), "unique_id"])
    assert len(ledger) == 40 and len(forecastable) >= 35
    assert set(parquet["unique_id"]) == set(sql["unique_id"]) == forecastable
    assert len(sql) == len(parquet) == 13 * len(forecastable) == published["sql_rows"]
    assert (sql["run_id"] == published["run_id"]).all()
    assert (sql["p10"] <= sql["p50"]).all() and (sql["p50"] <= sql["p90"]).all()
    registered = _xcom(run, "finalize")["mlflow"]
    assert registered["alias"] == "champion" and registered["version"]
    assert (sql["model_version"].astype(str) == str(registered["version"])).all()
    assert (run_dir / "report.html").exists() and _xcom(run, "report")["report"] == str(run_dir / "report.html")
    # each mapped shard task is named in the UI by its shard and its number of series
    shards = pd.read_parquet(run_dir / "input" / "lifecycle.parquet")["shard"].value_counts()
    names = sorted(t.rendered_map_index for t in run.get_task_instances() if t.task_id == "train_shard")
    assert names == sorted(f"shard {s} ({n} series)" for s, n in shards.items())


def test_failed_shard_still_publishes_the_others(world: dict) -> None:
    from forecasting.orchestration.steps.prepare import prepare_task

    as_of = "2025-12-07"
    prepared = prepare_task(world["config"], as_of)
    marker = Path(prepared["run_dir"]) / "shards" / "shard-0001" / "_SUCCESS"
    marker.write_text("{ corrupt")  # a damaged checkpoint: every attempt of shard 1 fails

    reason = "re-publish the week with the failed shard"
    run = _bag().get_dag("weekly_forecast").test(
        run_conf={"as_of": as_of, "config": world["config"], "champion": "promote", "reason": reason})
    states = _states(run)
    assert states["train_shard"] == ["success", "failed", "success"]
    assert states["finalize"] == ["success"] and states["publish"] == ["success"]
    # The run succeeds (its leaves did); the failed mapped task stays visible, retried once.
    assert str(run.state) == "success"
    failed_ti = next(t for t in run.get_task_instances() if t.task_id == "train_shard" and t.map_index == 1)
    assert failed_ti.try_number == 2
    shard_1 = set(pd.read_parquet(Path(prepared["run_dir"]) / "shards" / "shard-0001" / "input.parquet")["unique_id"])
    summary = json.loads((Path(prepared["run_dir"]) / "summary.json").read_text())
    ledger = pd.read_parquet(Path(prepared["run_dir"]) / "ledger.parquet").set_index("unique_id")
    assert summary["failed_shards"] == [1]
    assert set(summary["failed_shard_series"]) == {u for u in shard_1 if ledger.loc[u, "status"] != "ended"}
    assert (ledger.loc[summary["failed_shard_series"], "reason"] == "shard_failed").all()
    sql = _sql(world, f"SELECT unique_id, status FROM forecasts WHERE forecast_origin = '{as_of} 00:00:00.000000'")
    forecastable = set(ledger.index[ledger["status"].isin(["ok", "fallback", "new"])])
    assert set(sql["unique_id"]) == forecastable and forecastable - shard_1
    assert set(sql.loc[sql["unique_id"].isin(shard_1), "status"]) == {"fallback"}
    decision = json.loads((Path(prepared["run_dir"]) / "registration.json").read_text())["decision"]
    assert decision["alias"] == "champion" and decision["operator_reason"] == reason and decision["decided_by"]


def _evaluate(world: dict, as_of: str):
    run = _bag().get_dag("retrain_trigger").test(run_conf={"as_of": as_of, "config": world["config"]})
    assert str(run.state) == "success", _states(run)
    return run


def test_retraining_loop_triggers_the_shifted_cohort_once(world: dict) -> None:
    first = _evaluate(world, WEEKS[0])
    assert _xcom(first, "evaluate", "status") == "none"  # one week of evidence does not reach the threshold
    assert _states(first)["retrain"] == ["skipped"]

    second = _evaluate(world, WEEKS[1])
    assert _xcom(second, "evaluate", "status") == "triggered"
    conf = _xcom(second, "evaluate", "conf")
    assert conf["series"] == SHIFTED and conf["as_of"] == WEEKS[1]
    assert _states(second)["retrain"] == ["success"]

    metrics = parse((world["root"] / "monitoring" / "metrics.prom").read_text())
    assert metrics["forecasting_monitoring_retrain_triggered_series"]["samples"][0][1] == len(SHIFTED)
    assert metrics["forecasting_monitoring_drift_flagged_series"]["samples"][0][1] == len(SHIFTED)

    again = _evaluate(world, WEEKS[1])
    assert _xcom(again, "evaluate", "status") == "already_triggered"
    assert _states(again)["retrain"] == ["skipped"]

    evaluations = _sql(world, "SELECT * FROM monitoring_evaluations")
    assert set(evaluations.loc[evaluations["degraded"].astype(bool), "unique_id"]) == set(SHIFTED)
    second_week = evaluations[evaluations["evaluation_date"].astype(str).str.startswith(WEEKS[1])].set_index("unique_id")
    assert (second_week.loc[SHIFTED, "points"] >= 3).all()  # week 1 from both origins, week 2 from both: all horizons
    decisions = _sql(world, "SELECT * FROM monitoring_decisions ORDER BY id")
    assert list(decisions["status"]) == ["none", "triggered", "already_triggered"]
    triggered = decisions[decisions["status"] == "triggered"]
    assert len(triggered) == 1 and json.loads(triggered["series"].iloc[0]) == SHIFTED

    from airflow.models.dagrun import DagRun

    runs = DagRun.find(dag_id="weekly_forecast", run_id="retrain__2025-W52")
    assert len(runs) == 1 and runs[0].conf["series"] == SHIFTED
    world["retrain_conf"] = runs[0].conf


def test_subset_retrain_replaces_only_its_series(world: dict) -> None:
    conf = world["retrain_conf"]
    run = _bag().get_dag("weekly_forecast").test(run_conf=conf)
    assert str(run.state) == "success", _states(run)
    published = _xcom(run, "publish")
    rows = _sql(world, "SELECT unique_id, run_id FROM forecasts WHERE forecast_origin = '2025-12-28 00:00:00.000000'")
    assert sorted(rows["unique_id"].unique()) == SHIFTED
    assert set(rows["run_id"]) == {published["run_id"]}
    earlier = _sql(world, f"SELECT count(*) AS n FROM forecasts WHERE forecast_origin = '{ORIGIN} 00:00:00.000000'")
    assert earlier["n"].iloc[0] > 13 * len(SHIFTED)  # the origin the cohort was judged on is untouched
