"""Lifecycle classes and Syntetos-Boylan numbers on hand-built series."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting.config.settings import LifecycleSettings
from forecasting.data.contract import ID, TARGET, TIME
from forecasting.data.lifecycle import (
    DEMAND_CLASSES,
    ENDED,
    INTERMITTENT,
    LIFECYCLES,
    NEW,
    SMOOTH,
    classify_lifecycle,
)

FREQ = "W-SUN"
AS_OF = pd.Timestamp("2024-03-31")  # a Sunday
SETTINGS = LifecycleSettings(ended_after_periods=4)
MIN_LENGTH = 6


def _history(series: dict[str, list[float]]) -> pd.DataFrame:
    frames = []
    for uid, values in series.items():
        dates = pd.date_range(end=AS_OF, periods=len(values), freq=FREQ)
        frames.append(pd.DataFrame({ID: uid, TIME: dates, TARGET: np.asarray(values, dtype=float)}))
    return pd.concat(frames, ignore_index=True)


SERIES = {
    "smooth": [10, 12, 8, 10, 10, 10],
    "erratic": [1, 10, 1, 10, 1, 10, 1, 10],
    "intermittent": [5, 0, 0, 3, 0, 0, 0, 12],
    "lumpy": [1, 0, 0, 0, 0, 0, 0, 20],
    "ended": [5, 5, 5, 5, 0, 0, 0, 0],
    "not_ended": [5, 5, 5, 5, 5, 0, 0, 0],
    "new": [4, 5, 6],
    "new_but_ended": [2, 0, 0, 0, 0],
    "all_zero": [0, 0, 0, 0, 0, 0, 0, 0],
}


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    result = classify_lifecycle(_history(SERIES), AS_OF, FREQ, MIN_LENGTH, SETTINGS)
    return result.set_index(ID)


def test_one_row_per_series_sorted_with_columns_and_types(table):
    result = table.reset_index()
    assert list(result.columns) == [ID, "lifecycle", "n_obs", "adi", "cv2", "demand_class", "last_nonzero"]
    assert result[ID].tolist() == sorted(SERIES)
    assert result["n_obs"].dtype == np.int64
    assert result["last_nonzero"].dtype == np.dtype("datetime64[ns]")
    assert set(result["lifecycle"]) <= set(LIFECYCLES)
    assert set(result["demand_class"]) <= set(DEMAND_CLASSES)
    assert LIFECYCLES == ("new", "intermittent", "smooth", "ended")


def test_lifecycle_classes(table):
    assert table["lifecycle"].to_dict() == {
        "smooth": SMOOTH,
        "erratic": SMOOTH,
        "intermittent": INTERMITTENT,
        "lumpy": INTERMITTENT,
        "ended": ENDED,
        "not_ended": INTERMITTENT,  # non-zero inside the 4-period window; ADI 8 / 5 = 1.6
        "new": NEW,
        "new_but_ended": ENDED,  # ended is decided before new
        "all_zero": ENDED,
    }


def test_adi_cv2_by_hand(table):
    # smooth: 6 non-zero of 6; mean 10, variance (0 + 4 + 4 + 0 + 0 + 0) / 6
    assert table.loc["smooth", "adi"] == 1.0
    assert table.loc["smooth", "cv2"] == pytest.approx((8 / 6) / 100)
    # erratic: mean 5.5, variance 4.5 ** 2 = 20.25
    assert table.loc["erratic", "adi"] == 1.0
    assert table.loc["erratic", "cv2"] == pytest.approx(20.25 / 30.25)
    # intermittent: 8 periods / 3 non-zero; values 5, 3, 12: mean 20/3, variance 178/3 - 400/9 = 134/9
    assert table.loc["intermittent", "adi"] == pytest.approx(8 / 3)
    assert table.loc["intermittent", "cv2"] == pytest.approx(134 / 400)
    # lumpy: 8 / 2; values 1, 20: mean 10.5, variance 9.5 ** 2
    assert table.loc["lumpy", "adi"] == 4.0
    assert table.loc["lumpy", "cv2"] == pytest.approx(90.25 / 110.25)
    # a single non-zero value has no spread; no non-zero value has no CV2 at all
    assert table.loc["new_but_ended", "adi"] == 5.0
    assert table.loc["new_but_ended", "cv2"] == 0.0
    assert np.isinf(table.loc["all_zero", "adi"]) and np.isnan(table.loc["all_zero", "cv2"])


def test_demand_classes(table):
    assert table.loc["smooth", "demand_class"] == "smooth"
    assert table.loc["erratic", "demand_class"] == "erratic"
    assert table.loc["intermittent", "demand_class"] == "intermittent"
    assert table.loc["lumpy", "demand_class"] == "lumpy"
    assert table.loc["all_zero", "demand_class"] == "intermittent"


def test_n_obs_and_last_nonzero(table):
    assert table["n_obs"].to_dict() == {uid: len(values) for uid, values in SERIES.items()}
    # "ended" is non-zero up to the 5th period from the end: 2024-03-03; not_ended one period later
    assert table.loc["ended", "last_nonzero"] == pd.Timestamp("2024-03-03")
    assert table.loc["not_ended", "last_nonzero"] == pd.Timestamp("2024-03-10")
    assert table.loc["smooth", "last_nonzero"] == AS_OF
    assert pd.isna(table.loc["all_zero", "last_nonzero"])


def test_adi_threshold_is_inclusive():
    history = _history({"x": [0, 4, 0, 4, 0, 4]})  # ADI exactly 2
    at = classify_lifecycle(history, AS_OF, FREQ, 2, LifecycleSettings(adi_threshold=2.0))
    above = classify_lifecycle(history, AS_OF, FREQ, 2, LifecycleSettings(adi_threshold=2.01))
    assert at["lifecycle"].item() == INTERMITTENT and at["demand_class"].item() == "intermittent"
    assert above["lifecycle"].item() == SMOOTH and above["demand_class"].item() == "smooth"


def test_rows_after_as_of_are_ignored_and_off_grid_as_of_uses_the_last_period():
    history = _history({"x": [5, 5, 5, 5, 0, 0, 0, 0]})
    later = pd.DataFrame({ID: "x", TIME: [AS_OF + pd.Timedelta(weeks=1)], TARGET: [9.0]})
    result = classify_lifecycle(
        pd.concat([history, later]), AS_OF + pd.Timedelta(days=3), FREQ, 2, SETTINGS
    )
    assert result["lifecycle"].item() == ENDED
    assert result["n_obs"].item() == 8


def test_default_window_of_26_periods():
    values = [1.0] * 10 + [0.0] * 26
    ended = classify_lifecycle(_history({"x": values}), AS_OF, FREQ, 2, LifecycleSettings())
    assert ended["lifecycle"].item() == ENDED
    recent = classify_lifecycle(_history({"x": [1.0] * 10 + [0.0] * 25}), AS_OF, FREQ, 2, LifecycleSettings())
    assert recent["lifecycle"].item() == INTERMITTENT  # ADI 35 / 10, but not ended


def test_empty_history():
    empty = _history({"x": [1.0]}).iloc[:0]
    result = classify_lifecycle(empty, AS_OF, FREQ, 2, SETTINGS)
    assert result.empty
    assert list(result.columns) == [ID, "lifecycle", "n_obs", "adi", "cv2", "demand_class", "last_nonzero"]
