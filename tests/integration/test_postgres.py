"""The forecast table, the SQL input source and the monitoring tables on a real PostgreSQL server."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from postgres import temporary_database

from forecasting.data.database import engine_for
from forecasting.data.demo import generate_demo_panel
from forecasting.monitoring import store
from forecasting.orchestration.monitor import evaluate_retraining
from forecasting.orchestration.steps.finalize import finalize_task
from forecasting.orchestration.steps.prepare import prepare_task
from forecasting.orchestration.steps.publish import publish_task
from forecasting.orchestration.steps.train_shard import train_shard_task

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "publishing"))
from test_sql_table import check_replacement_semantics  # noqa: E402

TEST_CONFIG = Path(__file__).resolve().parents[2] / "config" / "test.yaml"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from temporary_database()


def test_forecast_table_on_postgres(postgres_url: str) -> None:
    check_replacement_semantics(sa.create_engine(postgres_url))


@pytest.mark.slow
def test_sql_source_and_monitoring_on_postgres(postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """History read by a query with :as_of, forecasts and monitoring tables in the same database."""
    # Seed 7: no unshifted series' CUSUM reaches the threshold in these two weeks (its promotions
    # and holiday ramps stay small against the shifts).
    panel = generate_demo_panel(40, 104, "W-SUN", "2025-12-28", 7)
    shifted = ["SKU-0002", "SKU-0020"]
    spread = panel.groupby("unique_id")["y"].transform(lambda y: y.diff().abs().mean())
    shift = panel["unique_id"].isin(shifted) & (panel["ds"] > pd.Timestamp("2025-12-14"))
    panel.loc[shift, "y"] += 15 * spread[shift] + 20
    engine = engine_for(postgres_url)
    panel.rename(columns={"unique_id": "item", "ds": "week", "y": "units"}).to_sql("sales", engine, index=False)
    monkeypatch.setenv("FORECASTING_DATABASE_URL", postgres_url)
    monkeypatch.setenv("FORECASTING_SOURCE_URL", postgres_url)
    config = tmp_path / "config.yaml"
    config.write_text(
        TEST_CONFIG.read_text()
        + f"output:\n  root: {tmp_path / 'output'}\n"
        + "data: {id_col: item, time_col: week, target_col: units}\n"
        + "source:\n  query: SELECT item, week, units FROM sales WHERE week <= :as_of\n"
    )
    prepared = prepare_task(str(config), "2025-12-14")
    for shard in prepared["shards"]:
        train_shard_task(prepared["run_dir"], shard)
    finalize_task(prepared["run_dir"])
    published = publish_task(prepared["run_dir"])
    with engine.connect() as connection:
        origin_rows = connection.execute(sa.text("SELECT count(*), max(forecast_origin) FROM forecasts")).one()
    assert origin_rows[0] == published["sql_rows"] > 0
    assert origin_rows[1] == pd.Timestamp("2025-12-14")  # the snapshot stopped at as_of

    decisions = [evaluate_retraining(str(config), day) for day in ("2025-12-21", "2025-12-28", "2025-12-28")]
    assert [d["status"] for d in decisions] == ["none", "triggered", "already_triggered"]
    assert decisions[1]["conf"]["series"] == shifted
    evaluations = store.read_table(engine, "monitoring_evaluations")
    assert set(evaluations.loc[evaluations["degraded"], "unique_id"]) == set(shifted)
    references = store.read_table(engine, "monitoring_reference")  # kept beside the forecasts
    assert set(references["run_id"]) == {prepared["run_id"]} and len(references) > 30
