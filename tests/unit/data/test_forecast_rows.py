"""The forecast rows training and serving share (``data.forecast_rows``): built with array
operations, equal to the per-series construction (kept here as the reference)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecasting.data.contract import quantile_label
from forecasting.data.forecast_rows import forecast_columns, forecast_rows

QUANTILES = (0.1, 0.5, 0.9)


def _reference(ids, origins, forecasts, quantiles, horizon, freq, **labels):  # type: ignore[no-untyped-def]
    frames = []
    for k, uid in enumerate(ids):
        frame = pd.DataFrame({
            "unique_id": uid,
            "ds": pd.date_range(origins[k], periods=horizon + 1, freq=freq)[1:],
            "horizon": np.arange(1, horizon + 1, dtype=np.int64),
        })
        for q in quantiles:
            frame[quantile_label(q)] = forecasts[k][q]
        for name, values in labels.items():
            frame[name] = values[k]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _forecasts(n: int, horizon: int) -> list[dict[float, np.ndarray]]:
    rng = np.random.default_rng(3)
    return [{q: np.sort(rng.normal(100.0, 10.0, horizon)) + q for q in QUANTILES} for _ in range(n)]


def test_rows_equal_the_per_series_construction_with_origins_shared_or_not():
    ids = ["b", "a", "c"]
    origins = [np.datetime64("2025-12-28"), np.datetime64("2025-12-28"), pd.Timestamp("2025-11-30")]
    forecasts = _forecasts(3, 4)
    labels = {"model": ["Naive", "Ensemble", "AutoETS"], "status": ["ok", "fallback", "new"]}
    fast = forecast_rows(ids, origins, forecasts, QUANTILES, 4, "W-SUN", **labels)
    pd.testing.assert_frame_equal(fast, _reference(ids, origins, forecasts, QUANTILES, 4, "W-SUN", **labels),
                                  check_exact=True)
    assert list(fast.columns) == forecast_columns(QUANTILES, "model", "status")
    assert fast["ds"].iloc[0] == pd.Timestamp("2026-01-04") and fast["ds"].iloc[-1] == pd.Timestamp("2025-12-28")


def test_dates_follow_the_frequency():
    rows = forecast_rows(["s"], [pd.Timestamp("2025-12-26")], _forecasts(1, 3), QUANTILES, 3, "W-FRI")
    assert list(rows["ds"]) == list(pd.date_range("2026-01-02", periods=3, freq="W-FRI"))
    assert rows["ds"].dt.dayofweek.eq(4).all()


def test_no_series_gives_the_columns_and_no_row():
    rows = forecast_rows([], [], [], QUANTILES, 4, "W-SUN", model=[], status=[], model_key=[])
    assert rows.empty and list(rows.columns) == forecast_columns(QUANTILES, "model", "status", "model_key")
