"""The weekly job with the embedded registry: versions, aliases, published versions, reruns, tampering.

One store per module; the runs build on each other in file order (champion, rerun, challenger,
switching margin, tamper last).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from forecasting.cli import main
from forecasting.config import load_settings
from forecasting.orchestration.local import run_weekly
from forecasting.registry.integrity import TamperedBundleError
from forecasting.registry.versions import load_verified

pytestmark = pytest.mark.slow

PROJECT_ROOT = Path(__file__).resolve().parents[3]
NAME = "forecasting"
RUN_IDS: list[str] = []


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("registry")
    profile = yaml.safe_load((PROJECT_ROOT / "config" / "test.yaml").read_text())
    profile["demo"]["n_series"] = 12
    # ensemble off and selection on the last window only: a later run that selects on more
    # windows can only be worse on that window (the challenger test relies on it)
    profile.update(registry={"enabled": True}, selection={"ensemble_top_k": 0}, backtest={"n_windows": 1})
    config = root / "registry.yaml"
    config.write_text(yaml.safe_dump(profile))
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    return {"root": root, "config": config, "uri": f"sqlite:///{root / 'mlflow' / 'mlflow.db'}"}


def _settings(store: dict, **sections):
    return load_settings(store["config"], {"output": {"root": str(store["root"])}, **sections})


def _client(store: dict):
    from mlflow import MlflowClient

    return MlflowClient(store["uri"], store["uri"])


@pytest.fixture(scope="module")
def first(store: dict) -> dict:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["run", "--config", str(store["config"]), "--output", str(store["root"]), "--json"])
    assert code == 0, out.getvalue()
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    RUN_IDS.append(summary["run_id"])
    return summary


def test_run_json_reports_the_registered_version(store: dict, first: dict):
    assert first["mlflow"] == {"tracking_uri": store["uri"], "model_name": NAME, "version": "1", "alias": "champion"}
    assert (store["root"] / "mlflow" / "mlflow.db").is_file()
    published = pd.read_parquet(first["published"])
    assert (published["model_version"] == "1").all()


def test_one_mlflow_run_with_params_metrics_and_artifacts(store: dict, first: dict):
    client = _client(store)
    experiment = client.get_experiment_by_name("forecasting")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.data.params["run_id"] == first["run_id"]
    assert run.data.params["candidates"] == "AutoTheta,SeasonalNaive,Naive,HistoricAverage,CrostonOptimized,TSB"
    assert len(run.data.params["data_fingerprint"]) > 8
    assert run.data.metrics["n_series"] == first["n_series"]
    assert run.data.metrics["count_ok"] == first["counts"]["ok"]
    assert 0 < run.data.metrics["sql_mean"] < 10
    shares = [v for k, v in run.data.metrics.items() if k.startswith("win_share.")]
    assert abs(sum(shares) - 1.0) < 1e-9
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "run")}
    assert {"run/ledger.parquet", "run/leaderboard.parquet", "run/manifest.json", "run/summary.json"} <= artifacts
    bundle = {a.path for a in client.list_artifacts(run.info.run_id, "bundle/artifacts")}
    assert {"bundle/artifacts/winners.parquet", "bundle/artifacts/history.parquet"} <= bundle
    requirements = client.download_artifacts(run.info.run_id, "bundle/requirements.txt")
    assert "statsforecast==" in Path(requirements).read_text()


def test_rerun_of_the_same_run_id_reuses_its_version_and_publishes_the_same_rows(store: dict, first: dict):
    before = pd.read_parquet(first["published"])
    again = run_weekly(_settings(store))
    assert again["run_id"] == first["run_id"]
    assert again["mlflow"]["version"] == "1" and again["mlflow"]["alias"] == "champion"
    assert len(_client(store).search_model_versions(f"name = '{NAME}'")) == 1
    pd.testing.assert_frame_equal(pd.read_parquet(again["published"]), before)


def test_champion_loads_by_alias_and_forecasts_a_named_series(store: dict, first: dict):
    published = pd.read_parquet(first["published"])
    series = published["unique_id"].iloc[0]
    model = load_verified(f"models:/{NAME}@champion", store["uri"])
    rows = model.predict(pd.DataFrame({"unique_id": [series]}))
    expected = published[published["unique_id"] == series].reset_index(drop=True)
    assert rows["unique_id"].eq(series).all() and list(rows["horizon"]) == list(range(1, 14))
    pd.testing.assert_frame_equal(rows[["ds", "p10", "p50", "p90", "model"]], expected[["ds", "p10", "p50", "p90", "model"]])
    # fresh history given: forecasts start after its last date, for the horizon asked for
    history = pd.read_parquet(store["root"] / "runs" / first["run_id"] / "shards" / "shard-0000" / "input.parquet")
    one = history[history["unique_id"] == history["unique_id"].iloc[0]].iloc[:-4]
    fresh = model.predict(one[["unique_id", "ds", "y"]], params={"horizon": 5})
    assert len(fresh) == 5 and fresh["ds"].iloc[0] > one["ds"].max() and fresh["ds"].iloc[0] < expected["ds"].iloc[0]


def test_a_worse_version_is_challenger_and_the_champion_forecasts_the_new_origin(store: dict, first: dict):
    champion_rows = pd.read_parquet(first["published"])
    second = run_weekly(_settings(store, backtest={"n_windows": 3}))
    RUN_IDS.append(second["run_id"])
    assert second["run_id"] != first["run_id"]
    assert second["mlflow"]["version"] == "2" and second["mlflow"]["alias"] == "challenger"
    version = _client(store).get_model_version(NAME, "2")
    assert version.tags["forecasting.decision.alias"] == "challenger"
    assert version.tags["forecasting.decision.compared_with_version"] == "1"
    assert float(version.tags["forecasting.decision.new_loss"]) > float(version.tags["forecasting.decision.champion_loss"])
    assert int(version.tags["forecasting.decision.series_compared"]) > 0
    assert str(_client(store).get_model_version_by_alias(NAME, "champion").version) == "1"
    published = pd.read_parquet(second["published"])
    assert second["forecasts_from_version"] == "1"
    assert (published["model_version"] == "1").all()
    assert (published["run_id"] == second["run_id"]).all()
    # the champion's models refitted on the same history: the champion's numbers
    columns = ["unique_id", "ds", "p10", "p50", "p90", "model"]
    pd.testing.assert_frame_equal(published[columns], champion_rows[columns], check_exact=False, rtol=1e-9)
    own = pd.read_parquet(second["forecasts"])  # the challenger's own rows stay in its run folder
    assert (own["model"].to_numpy() != published["model"].to_numpy()).any()


def test_switching_margin_keeps_the_champions_winners(store: dict, first: dict):
    champion = pd.read_parquet(first["ledger"]).set_index("unique_id")["model"]
    third = run_weekly(_settings(store, backtest={"n_windows": 3}, registry={"enabled": True, "switching_margin": 0.99}))
    ledger = pd.read_parquet(third["ledger"]).set_index("unique_id")
    ok = ledger[ledger["status"] == "ok"]
    assert (ok["selection"] == "kept_by_margin").any()
    kept = ok[ok["selection"] == "kept_by_margin"]
    assert (kept["winner"] == champion.reindex(kept.index)).all()
    without = pd.read_parquet(store["root"] / "runs" / RUN_IDS[1] / "ledger.parquet").set_index("unique_id")
    assert (without.loc[kept.index, "winner"] != kept["winner"]).all()  # the margin decided these
    # its report compares with the champion's run (version 1), not with the newer challenger's
    assert third["previous_run"] == RUN_IDS[0] != RUN_IDS[1]


def _bundle_winners(store: dict, version: str) -> pd.DataFrame:
    local = _client(store).download_artifacts(
        _client(store).get_model_version(NAME, version).run_id, "bundle/artifacts/winners.parquet"
    )
    return pd.read_parquet(local)


def test_a_subset_run_carries_the_champions_other_series_into_its_bundle(store: dict, first: dict):
    everything = _bundle_winners(store, "1")
    subset = sorted(everything["unique_id"])[:3]
    champion_before = str(_client(store).get_model_version_by_alias(NAME, "champion").version)
    champion_winners = _bundle_winners(store, champion_before).set_index("unique_id")
    part = run_weekly(_settings(store), subset)
    own = pd.read_parquet(part["ledger"])
    assert sorted(own["unique_id"]) == subset
    bundled = _bundle_winners(store, part["mlflow"]["version"]).set_index("unique_id")
    assert set(bundled.index) == set(everything["unique_id"])
    others = bundled.index.difference(subset)
    pd.testing.assert_series_equal(bundled.loc[others, "model"], champion_winners.loc[others, "model"])
    assert (bundled.loc[subset, "model"] == own.set_index("unique_id").loc[subset, "model"]).all()


def test_a_tampered_bundle_is_refused_before_loading(store: dict, first: dict):
    client = _client(store)
    version = client.get_model_version(NAME, "1")
    target = store["root"] / "mlflow" / "artifacts" / version.run_id / "artifacts" / "bundle" / "artifacts" / "winners.parquet"
    original = target.read_bytes()
    frame = pd.read_parquet(target)
    frame["model"] = "Naive"
    frame.to_parquet(target, index=False)
    try:
        with pytest.raises(TamperedBundleError, match=r"version 1: .*changed: artifacts/winners.parquet"):
            load_verified(f"models:/{NAME}/1", store["uri"])
    finally:
        target.write_bytes(original)
    assert load_verified(f"models:/{NAME}/1", store["uri"]) is not None
