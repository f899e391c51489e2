"""The configured frequency against the dates: the anchor they fall on is named."""

from __future__ import annotations

import pandas as pd
import pytest

from forecasting.config import ConfigError
from forecasting.data.frequency import check_frequency, require_fitting_frequency


def _dates(start: str, freq: str, n: int = 30) -> pd.Series:
    return pd.Series(pd.date_range(start, periods=n, freq=freq))


def test_friday_data_under_w_sun_suggests_w_fri() -> None:
    check = check_frequency(_dates("2024-01-05", "W-FRI"), "W-SUN")
    assert check.off_grid_share == 1.0 and check.suggested == "W-FRI"
    with pytest.raises(ConfigError, match=r"forecast.freq W-SUN does not fit .*'week'.*Fridays: use --freq W-FRI"):
        require_fitting_frequency(_dates("2024-01-05", "W-FRI"), "W-SUN", "week")


def test_month_start_data_under_month_end_suggests_ms() -> None:
    assert check_frequency(_dates("2024-01-01", "MS"), "ME").suggested == "MS"


def test_fitting_dates_and_a_few_irregular_ones_pass() -> None:
    dates = _dates("2024-01-07", "W-SUN")
    assert check_frequency(dates, "W-SUN").off_grid_share == 0.0
    some_off = pd.concat([dates, pd.Series([pd.Timestamp("2024-01-10")])], ignore_index=True)
    assert require_fitting_frequency(some_off, "W-SUN").off_grid_share == pytest.approx(1 / 31)


def test_no_suggestion_when_no_anchor_holds_the_dates() -> None:
    mixed = pd.concat([_dates("2024-01-05", "W-FRI", 10), _dates("2024-01-02", "W-TUE", 10)], ignore_index=True)
    check = check_frequency(mixed, "W-SUN")
    assert check.off_grid_share == 1.0 and check.suggested is None
    require_fitting_frequency(mixed, "W-SUN")  # left to validation (quarantine, circuit breaker)


def test_monthly_data_under_a_weekly_setting_gets_the_inferred_frequency() -> None:
    check = check_frequency(_dates("2024-01-01", "MS"), "W-SUN")
    assert check.suggested == "MS" and "a regular MS grid" in check.message()
