"""The weekly job with the embedded registry: versions, aliases, published versions, reruns, tampering.

One store per module; the runs build on each other in file order: a champion as of 2025-09-28,
its rerun, a newer version of the same configuration (promoted: a tie on held-out evidence), a
worse configuration (challenger: the champion forecasts the new origin), an operator's rollback,
the switching margin against the rolled-back champion, a subset run, tampering last.
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
FIRST, LATEST = "2025-09-28", "2025-12-28"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("registry")
    profile = yaml.safe_load((PROJECT_ROOT / "config" / "test.yaml").read_text())
    profile["demo"]["n_series"] = 12
    profile.update(registry={"enabled": True})
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
        code = main(["run", "--config", str(store["config"]), "--output", str(store["root"]), "--as-of", FIRST, "--json"])
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
    again = run_weekly(_settings(store, forecast={"as_of": FIRST}))
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


def test_a_newer_version_of_the_same_configuration_ties_and_is_promoted(store: dict, first: dict):
    second = run_weekly(_settings(store, forecast={"as_of": LATEST}))
    RUN_IDS.append(second["run_id"])
    assert second["mlflow"]["version"] == "2" and second["mlflow"]["alias"] == "champion"
    tags = _client(store).get_model_version(NAME, "2").tags
    assert tags["forecasting.decision.compared_with_version"] == "1"
    assert tags["forecasting.decision.window_cutoff"] == FIRST  # the last window: 13 weeks neither chose on
    compared = int(tags["forecasting.decision.series_compared"])
    assert compared >= 9 and tags["forecasting.as_of"].startswith(LATEST)
    # both versions' rule on the same windows: one configuration, one choice, the same loss
    assert float(tags["forecasting.decision.new_loss"]) == pytest.approx(float(tags["forecasting.decision.champion_loss"]))
    evidence = pd.read_parquet(Path(second["run_dir"]) / "decision.parquet")
    assert evidence["compared"].sum() == compared and (evidence.loc[evidence["compared"], "weeks"] == 13).all()
    run_id = _client(store).get_model_version(NAME, "2").run_id
    assert "decision/evidence.parquet" in {a.path for a in _client(store).list_artifacts(run_id, "decision")}
    assert "champion decision" in Path(second["report"]).read_text()


def test_a_worse_configuration_is_challenger_and_the_champion_forecasts_the_new_origin(store: dict, first: dict):
    champion_rows = pd.read_parquet(Path(store["root"]) / "forecasts" / f"origin={LATEST}.parquet")
    third = run_weekly(_settings(store, forecast={"as_of": LATEST},
                                 models={"candidates": [{"name": "HistoricAverage"}, {"name": "Naive"}]}))
    RUN_IDS.append(third["run_id"])
    assert third["mlflow"]["version"] == "3" and third["mlflow"]["alias"] == "challenger"
    tags = _client(store).get_model_version(NAME, "3").tags
    assert tags["forecasting.decision.compared_with_version"] == "2"
    assert float(tags["forecasting.decision.new_loss"]) > float(tags["forecasting.decision.champion_loss"])
    assert "worse by more than the margin" in tags["forecasting.decision.reason"]
    assert str(_client(store).get_model_version_by_alias(NAME, "champion").version) == "2"
    published = pd.read_parquet(third["published"])
    assert third["forecasts_from_version"] == "2"
    assert (published["model_version"] == "2").all() and (published["run_id"] == third["run_id"]).all()
    # the champion's models refitted on the same history: the champion's own numbers
    columns = ["unique_id", "ds", "p10", "p50", "p90", "model"]
    pd.testing.assert_frame_equal(published[columns], champion_rows[columns], check_exact=False, rtol=1e-9)
    own = pd.read_parquet(third["forecasts"])  # the challenger's own rows stay in its run folder
    assert (own["model"].to_numpy() != published["model"].to_numpy()).any()


def test_an_operator_rolls_back_and_it_is_recorded(store: dict, first: dict):
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["registry", "rollback", "--reason", "the new version misses the promotions", "--by", "ana",
                     "--config", str(store["config"]), "--output", str(store["root"]), "--json"])
    assert code == 0, out.getvalue()
    done = json.loads(out.getvalue().strip().splitlines()[-1])
    assert done["champion"] == "1" and done["previous"] == "2" and done["by"] == "ana"
    with contextlib.redirect_stdout(out := io.StringIO()):
        assert main(["registry", "show", "--config", str(store["config"]), "--output", str(store["root"]), "--json"]) == 0
    shown = json.loads(out.getvalue().strip().splitlines()[-1])
    assert shown["champion"] == "1" and shown["log"][0]["action"] == "rollback"
    assert shown["log"][0]["reason"] == "the new version misses the promotions"
    assert [e["action"] for e in shown["log"]][:2] == ["rollback", "auto"]  # version 2 was promoted by the rule
    with contextlib.redirect_stdout(io.StringIO()):  # no reason, no action: a usage error
        assert main(["registry", "promote", "2", "--config", str(store["config"]), "--output", str(store["root"])]) == 2


def test_switching_margin_keeps_the_champions_models_as_they_were(store: dict, first: dict):
    champion = _bundle_winners(store, "1").set_index("unique_id")
    margin = run_weekly(_settings(store, forecast={"as_of": LATEST}, registry={"enabled": True, "switching_margin": 0.99}))
    ledger = pd.read_parquet(margin["ledger"]).set_index("unique_id")
    kept = ledger[ledger["selection"] == "kept_by_margin"]
    assert len(kept) >= 3
    assert (kept["model"] == champion.loc[kept.index, "model"]).all()
    assert (kept["ensemble_members"] == champion.loc[kept.index, "ensemble_members"].fillna("")).all()
    decisions = pd.read_parquet(Path(margin["run_dir"]) / "switching.parquet").set_index("unique_id")
    assert (decisions.loc[kept.index, "previous_members"].fillna("") == kept["ensemble_members"]).all()
    # its winners differed from the champion's models (the margin decided), and its bundle keeps them as they were
    own = pd.read_parquet(Path(store["root"]) / "runs" / RUN_IDS[1] / "ledger.parquet").set_index("unique_id")
    assert (own.loc[kept.index, "model"] + own.loc[kept.index, "ensemble_members"]
            != kept["model"] + kept["ensemble_members"]).all()
    bundled = _bundle_winners(store, margin["mlflow"]["version"]).set_index("unique_id")
    pd.testing.assert_series_equal(bundled.loc[kept.index, "ensemble_members"].fillna(""), kept["ensemble_members"])
    # its report compares with the champion's run (version 1), not with the newer versions
    assert margin["previous_run"] == RUN_IDS[0]


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
    part = run_weekly(_settings(store, forecast={"as_of": LATEST}), subset)
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
