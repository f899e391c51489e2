"""The SQL forecast table on SQLite: the key, subset replacement, one transaction per publish."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from forecasting.publishing.sql import publish_sql, read_forecasts
from forecasting.publishing.table import build_forecast_table

QUANTILES = [0.1, 0.5, 0.9]
ORIGIN = pd.Timestamp("2025-06-01")


def _rows(ids: list[str], run_id: str, level: float = 1.0) -> pd.DataFrame:
    frames = []
    for uid in ids:
        ds = pd.date_range(ORIGIN, periods=4, freq="W-SUN")[1:]
        frames.append(pd.DataFrame({"unique_id": uid, "ds": ds, "horizon": [1, 2, 3], "p10": level - 1,
                                    "p50": level, "p90": level + 1, "model": "Naive", "status": "ok"}))
    return build_forecast_table(pd.concat(frames, ignore_index=True), ORIGIN, run_id, QUANTILES)


def publish(engine: sa.Engine, frame: pd.DataFrame, series: list[str]) -> int:
    return publish_sql(frame, engine, "forecasts", QUANTILES, series, ORIGIN)


def check_replacement_semantics(engine: sa.Engine) -> None:
    """Shared by the SQLite and PostgreSQL tests."""
    assert publish(engine, _rows(["a", "b", "c"], "run-1"), ["a", "b", "c"]) == 9
    assert publish(engine, _rows(["a", "b", "c"], "run-1"), ["a", "b", "c"]) == 9  # idempotent
    # A subset run replaces its series only; a covered series it does not publish loses its rows.
    publish(engine, _rows(["b"], "run-2", level=5.0), ["b", "c"])
    table = read_forecasts(engine, "forecasts", ORIGIN)
    assert sorted(table["unique_id"].unique()) == ["a", "b"]
    assert set(table.loc[table["unique_id"] == "a", "run_id"]) == {"run-1"}
    assert set(table.loc[table["unique_id"] == "b", "p50"]) == {5.0}
    assert len(table) == 6
    # A publish that fails half-way leaves the table as it was (one transaction).
    broken = _rows(["a", "b"], "run-3", level=9.0)
    broken.loc[broken.index[-1], "model"] = None  # violates NOT NULL on the last insert
    with pytest.raises(sa.exc.IntegrityError):
        publish(engine, broken, ["a", "b"])
    after = read_forecasts(engine, "forecasts", ORIGIN)
    pd.testing.assert_frame_equal(after, table)
    # The key is enforced by the database itself.
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO forecasts SELECT * FROM forecasts"))


def test_sqlite_table_replaces_a_runs_series_in_one_transaction(tmp_path: Path) -> None:
    check_replacement_semantics(sa.create_engine(f"sqlite:///{tmp_path / 'f.db'}"))


def test_an_existing_table_without_a_configured_quantile_is_refused(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'f.db'}")
    publish(engine, _rows(["a"], "run-1"), ["a"])
    with pytest.raises(ValueError, match=r"lacks the columns \['p5'\]"):
        publish_sql(_rows(["a"], "run-1"), engine, "forecasts", [0.05, *QUANTILES], ["a"], ORIGIN)
