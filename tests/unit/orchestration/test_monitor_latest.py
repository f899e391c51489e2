"""The retraining check judges each series' newest forecast published before the evaluation date."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from forecasting.orchestration.monitor import _latest_forecasts


def test_each_series_newest_origin_before_the_date(tmp_path: Path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'forecasts.db'}")
    rows = pd.DataFrame({
        "unique_id": ["a", "a", "a", "b", "c"],
        "forecast_origin": pd.to_datetime(["2025-12-07", "2025-12-14", "2025-12-28", "2025-12-07", "2025-12-28"]),
        "ds": pd.to_datetime(["2025-12-14", "2025-12-21", "2026-01-04", "2025-12-14", "2026-01-04"]),
        "p50": [1.0, 2.0, 3.0, 4.0, 5.0],
    })
    rows.to_sql("forecasts", engine, index=False)

    latest = _latest_forecasts(engine, "forecasts", pd.Timestamp("2025-12-21"))

    assert sorted(zip(latest["unique_id"], latest["p50"], strict=True)) == [("a", 2.0), ("b", 4.0)]
    assert latest["forecast_origin"].dtype.kind == "M"
