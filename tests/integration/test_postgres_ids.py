"""Series ids PostgreSQL cannot store are stopped at the boundary: the run publishes every other
series to Parquet and PostgreSQL alike, and the bad ids are in the ledger with their reason."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from postgres import temporary_database

from forecasting.cli import EXIT_OK, main

NUL_ID = "SKU\x00-1"
LONG_ID = "L" * 300
LONGEST_ID = "M" * 255  # the longest id the contract allows: the SQL key column holds it


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from temporary_database()


def test_ids_postgres_cannot_store_are_quarantined_and_both_stores_agree(postgres_url, tmp_path, capsys, monkeypatch):
    dates = pd.date_range("2024-01-07", periods=40, freq="W-SUN")
    rng = np.random.default_rng(5)
    ids = [f"s{i}" for i in range(10)] + [NUL_ID, LONG_ID, LONGEST_ID]
    panel = pd.concat([pd.DataFrame({"unique_id": uid, "ds": dates, "y": rng.uniform(1, 9, dates.size)}) for uid in ids],
                      ignore_index=True)
    data = tmp_path / "history.parquet"
    panel.to_parquet(data)
    config = tmp_path / "config.yaml"
    config.write_text(
        "forecast: {horizon: 4, season_length: 4}\n"
        "models: {candidates: [{name: Naive}, {name: HistoricAverage}], fallback: [Naive]}\n"
        "ensemble: {enabled: false}\n"
        "compute: {executor: serial, n_shards: 2, progress: false}\n"
        f"output: {{root: {tmp_path / 'out'}}}\nregistry: {{enabled: false}}\nreporting: {{enabled: false}}\n"
    )
    monkeypatch.setenv("FORECASTING_DATABASE_URL", postgres_url)
    code = main(["run", "--config", str(config), "--data", str(data), "--json"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == EXIT_OK, result

    ledger = pd.read_parquet(result["ledger"]).set_index("unique_id")
    assert (ledger.loc[[NUL_ID, LONG_ID], "reason"] == "invalid_id").all()
    assert "control character '\\x00'" in ledger.loc[NUL_ID, "detail"]
    assert "300 characters long" in ledger.loc[LONG_ID, "detail"]
    parquet = pd.read_parquet(result["published"])
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as connection:
            sql = pd.read_sql("SELECT * FROM forecasts ORDER BY unique_id, ds", connection)
    finally:
        engine.dispose()
    expected = {f"s{i}" for i in range(10)} | {LONGEST_ID}
    assert set(parquet["unique_id"]) == set(sql["unique_id"]) == expected
    assert len(sql) == len(parquet) == len(expected) * 4
