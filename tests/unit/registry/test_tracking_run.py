"""What an operator sees in MLflow after a run: a training run named by the run id, lasting as long as
the pipeline, with short readable parameters and tags; and the champion bundle's answer for a series
it does not know (as the user guide describes it)."""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from forecasting.cli import main

PROJECT_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("tracking")
    profile = yaml.safe_load((PROJECT_ROOT / "config" / "test.yaml").read_text())
    profile["demo"]["n_series"] = 10
    profile.update(registry={"enabled": True, "experiment": "tracked", "model_name": "tracked"})
    config = root / "tracked.yaml"
    config.write_text(yaml.safe_dump(profile))
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["run", "--config", str(config), "--output", str(root), "--json"])
    assert code == 0, out.getvalue()
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    return {"root": root, "summary": summary, "uri": f"sqlite:///{root / 'mlflow' / 'mlflow.db'}"}


def test_the_mlflow_run_is_named_timed_and_readable(tracked: dict):
    from mlflow import MlflowClient

    client = MlflowClient(tracked["uri"], tracked["uri"])
    experiment = client.get_experiment_by_name("tracked")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # training runs, not evaluation
    (run,) = client.search_runs([experiment.experiment_id])
    summary = tracked["summary"]
    run_dir = Path(summary["run_dir"])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    timings = json.loads((run_dir / "timings.json").read_text())
    assert run.info.run_name == summary["run_id"] and run.info.status == "FINISHED"
    assert run.info.start_time == int(manifest["started_at"] * 1000)
    duration = (run.info.end_time - run.info.start_time) / 1000
    assert duration >= 0.95 * sum(timings.values())  # the pipeline's time, not the logging call's
    assert {f"stage_seconds.{stage}" for stage in timings} <= set(run.data.metrics)
    assert run.data.tags["forecasting.as_of"] == summary["as_of"][:10]
    assert run.data.tags["forecasting.series"] == "10"
    assert all(not value.startswith(("{", "[")) and len(value) <= 250 for value in run.data.params.values())
    assert run.data.params["version.statsforecast"] and run.data.params["code_version"]


def test_the_bundle_forecasts_an_unknown_series_from_its_history_only(tracked: dict):
    from forecasting.registry.versions import load_verified

    model = load_verified("models:/tracked@champion", tracked["uri"])
    history = pd.DataFrame({"unique_id": "NEW-1", "ds": pd.date_range("2024-01-07", periods=30, freq="W-SUN"),
                            "y": [float(5 + i % 4) for i in range(30)]})
    rows = model.predict(history, params={"horizon": 4})
    assert len(rows) == 4 and set(rows["status"]) == {"fallback"} and set(rows["unique_id"]) == {"NEW-1"}
    with pytest.raises(KeyError, match=r"not in the bundle.s history \(pass their history as ds, y rows\).*NEW-2"):
        model.predict(pd.DataFrame({"unique_id": ["NEW-2"]}))
