"""Operator commands and a challenger's published forecasts against a real `mlflow server` (SQLite store).

1. A run with global LightGBM becomes champion; a second run over the same data is kept challenger by
   an operator's choice (the weekly DAG's params): it publishes the champion's forecasts, whose
   LightGBM rows are those of the global fit the champion was backtested with.
2. `forecasting registry promote`, `rollback`, `pin` and `unpin` move and freeze the champion, each
   recorded with who and why; a pinned champion stays champion against a new version.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pandas as pd
import pytest
from mlflow_server import MlflowServer

from forecasting.cli import main
from forecasting.config import load_settings
from forecasting.orchestration.steps.finalize import finalize_task
from forecasting.orchestration.steps.prepare import create_run_folder
from forecasting.orchestration.steps.publish import publish_task
from forecasting.orchestration.steps.train_shard import train_shard_task

pytestmark = pytest.mark.slow

PROJECT_ROOT = Path(__file__).resolve().parents[2]
NAME = "forecasting"
LIGHTGBM = {"name": "LightGBM", "params": {"n_estimators": 10, "num_leaves": 5, "min_child_samples": 5}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    running = MlflowServer(tmp_path_factory.mktemp("mlflow-server")).start()
    yield running
    running.stop()


def _run(root: Path, uri: str, operator: dict | None = None, **registry) -> dict:
    settings = load_settings(PROJECT_ROOT / "config" / "test.yaml", {
        "output": {"root": str(root)}, "demo": {"n_series": 10, "seed": 3},
        "models": {"candidates": [LIGHTGBM, {"name": "Naive"}, {"name": "SeasonalNaive"}]},
        "ensemble": {"enabled": False},
        "registry": {"enabled": True, "tracking_uri": uri, **registry},
    })
    prepared = create_run_folder(settings)
    for shard in prepared["shards"]:
        train_shard_task(prepared["run_dir"], shard)
    summary = finalize_task(prepared["run_dir"], operator)
    return {**summary, **publish_task(prepared["run_dir"]), "run_dir": prepared["run_dir"]}


def _cli(*args: str) -> tuple[int, dict]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([*args, "--json"])
    return code, json.loads(out.getvalue().strip().splitlines()[-1])


@pytest.fixture(scope="module")
def runs(server: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("operator")
    first = _run(root, server.url)
    kept = _run(root, server.url, {"champion": "keep", "by": "ana", "reason": "compare for a week"}, champion_margin=0.5)
    return {"root": root, "first": first, "kept": kept}


def test_a_challenger_publishes_the_champions_global_lightgbm_fit(runs: dict):
    first, kept = runs["first"], runs["kept"]
    assert first["mlflow"]["alias"] == "champion" and kept["mlflow"]["alias"] == "challenger"
    registration = json.loads((Path(kept["run_dir"]) / "registration.json").read_text())
    assert registration["decision"]["decided_by"] == "ana" and registration["publish_version"] == "1"
    champion = pd.read_parquet(first["published"])
    published = pd.read_parquet(kept["published"])
    assert (published["model_version"] == "1").all() and kept["forecasts_from_version"] == "1"
    lightgbm = set(champion.loc[champion["model"] == "LightGBM", "unique_id"])
    assert lightgbm, "the champion should hold LightGBM winners"
    columns = ["unique_id", "ds", "p10", "p50", "p90", "model"]
    pd.testing.assert_frame_equal(published[columns].reset_index(drop=True), champion[columns].reset_index(drop=True),
                                  check_exact=False, rtol=1e-9)


def test_promote_rollback_and_pin_are_recorded(server: MlflowServer, runs: dict):
    uri = ["--tracking-uri", server.url]
    code, done = _cli("registry", "promote", "2", "--reason", "week of shadowing passed", "--by", "bo", *uri)
    assert code == 0 and done["champion"] == "2" and done["previous"] == "1"
    code, done = _cli("registry", "rollback", "--reason", "complaints from planning", "--by", "cy", *uri)
    assert code == 0 and done["champion"] == "1" and done["previous"] == "2"
    code, done = _cli("registry", "pin", "--reason", "peak season freeze", "--by", "dee", *uri)
    assert code == 0 and done["pinned"]["version"] == "1" and done["pinned"]["by"] == "dee"

    # a pinned champion stays champion whatever the new version's evidence
    third = _run(runs["root"], server.url, champion_margin=10.0)
    assert third["mlflow"]["alias"] == "challenger"
    code, shown = _cli("registry", "show", third["mlflow"]["version"], *uri)
    assert code == 0 and shown["champion"] == "1" and shown["pinned"]["reason"] == "peak season freeze"
    reason = shown["version"]["tags"]["forecasting.decision.reason"]
    assert "pinned by dee: peak season freeze" in reason
    actions = [(e["action"], e["by"]) for e in shown["log"]]
    assert actions[:4] == [("pin", "dee"), ("rollback", "cy"), ("promote", "bo"), ("auto", "forecasting (rule)")]
    code, one = _cli("registry", "show", "1", *uri)
    assert json.loads(one["version"]["tags"]["forecasting.operator.rollback"])["by"] == "cy"

    code, done = _cli("registry", "unpin", "--reason", "season over", "--by", "dee", *uri)
    assert code == 0 and done["pinned"] is None
    code, failed = _cli("registry", "promote", "99", "--reason", "typo", "--by", "eve", *uri)
    assert code == 2 and "no version 99" in failed["error"]
