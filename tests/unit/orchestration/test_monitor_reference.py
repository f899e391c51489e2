"""The retraining check judges every series, new ones too, and keeps judging after retention deleted the run folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from forecasting.config import load_settings
from forecasting.data.database import database_engine
from forecasting.data.demo import generate_demo_panel
from forecasting.monitoring import store
from forecasting.orchestration.monitor import evaluate_retraining, keep_references_before_retention
from forecasting.orchestration.steps.finalize import finalize_task
from forecasting.orchestration.steps.prepare import prepare_task
from forecasting.orchestration.steps.publish import publish_task
from forecasting.orchestration.steps.train_shard import train_shard_task

pytestmark = pytest.mark.slow

TEST_CONFIG = Path(__file__).resolve().parents[3] / "config" / "test.yaml"


def test_references_survive_retention_and_new_series_are_judged(tmp_path: Path):
    panel = generate_demo_panel(16, 104, "W-SUN", "2025-12-28", 7)
    panel.to_parquet(tmp_path / "sales.parquet")
    profile = yaml.safe_load(TEST_CONFIG.read_text())
    profile.update(demo={"n_series": 16}, data={"path": str(tmp_path / "sales.parquet")},
                   output={"root": str(tmp_path / "output")}, reporting={"enabled": False})
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(profile))
    prepared = prepare_task(str(config), "2025-12-14")
    for shard in prepared["shards"]:
        train_shard_task(prepared["run_dir"], shard)
    finalize_task(prepared["run_dir"])
    publish_task(prepared["run_dir"])
    ledger = pd.read_parquet(Path(prepared["run_dir"]) / "ledger.parquet").set_index("unique_id")

    settings = load_settings(config)
    assert keep_references_before_retention(settings, [Path(prepared["run_dir"])]) == [prepared["run_id"]]
    shutil.rmtree(prepared["run_dir"])  # what retention does next

    decision = evaluate_retraining(str(config), "2025-12-28")
    evaluations = store.read_table(database_engine(settings), "monitoring_evaluations").set_index("unique_id")
    published = ledger[ledger["status"].isin(["ok", "fallback", "new"])]
    assert decision["n_evaluated"] == len(published) == len(evaluations)
    assert (evaluations["points"] == 2).all() and (evaluations["weeks"] == 2).all()  # horizons 1 and 2 arrived
    assert not evaluations["reason"].str.startswith("no reference").any()
    backtested = published.index[published["status"] != "new"]
    assert not evaluations.loc[backtested, "pooled_reference"].any()
    new = published.index[published["status"] == "new"]
    assert len(new) and evaluations.loc[new, "pooled_reference"].all()
