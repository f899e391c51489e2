"""Validation at the boundary, hardened: ids a database can store, dates in any zone or range,
implausible gap filling, series that start after the as-of date."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting.config.settings import ValidationSettings
from forecasting.data.contract import ID, TARGET, TIME
from forecasting.data.validation import DataSchemaError, validate_history

MAX_ID_LENGTH = 255
REASON_INVALID_ID, REASON_EXCESSIVE_GAPS, REASON_NOT_STARTED = "invalid_id", "excessive_gaps", "starts_after_as_of"


def check_schema(raw: pd.DataFrame):
    from forecasting.data.validation import check_schema as check  # the public schema check

    return check(raw)

FREQ = "W-SUN"
DATES = pd.date_range("2024-01-07", periods=30, freq=FREQ)
AS_OF = DATES[-1]


def _series(uid: str, dates=DATES, level: float = 10.0) -> pd.DataFrame:
    dates = pd.DatetimeIndex(dates) if not isinstance(dates, pd.Series) else dates
    return pd.DataFrame({ID: uid, TIME: dates, TARGET: level + np.arange(len(dates), dtype=float)})


def _panel(*extra: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([_series("a"), _series("b"), *extra], ignore_index=True)


def _reasons(report) -> dict[str, str]:
    return dict(zip(report.quarantine[ID], report.quarantine["reason"], strict=True))


def test_ids_a_database_cannot_store_are_quarantined_with_the_reason():
    nul, long, blank = "bad\x00id", "x" * (MAX_ID_LENGTH + 1), "  "
    raw = _panel(_series(nul), _series(long), _series(blank), _series("y" * MAX_ID_LENGTH))
    report = validate_history(raw, FREQ, AS_OF, ValidationSettings())
    assert _reasons(report) == {nul: REASON_INVALID_ID, long: REASON_INVALID_ID, blank: REASON_INVALID_ID}
    details = dict(zip(report.quarantine[ID], report.quarantine["detail"], strict=True))
    assert "control character '\\x00' at position 3" in details[nul]
    assert f"{MAX_ID_LENGTH + 1} characters long, at most {MAX_ID_LENGTH}" in details[long]
    assert "empty or blank" in details[blank]
    assert set(report.history[ID]) == {"a", "b", "y" * MAX_ID_LENGTH}  # the longest allowed id is kept
    assert report.n_input_series == 6


def test_local_midnights_in_a_time_zone_stay_on_the_grid():
    local = _series("a", pd.Series(DATES.tz_localize("Europe/Berlin")))
    report = validate_history(local, FREQ, AS_OF, ValidationSettings())
    assert report.quarantine.empty
    assert list(report.history[TIME]) == list(DATES)  # midnight wall-clock dates, not 23:00 UTC
    assert report.notes and "time-zone aware (Europe/Berlin)" in report.notes[0]


def test_dates_with_utc_offsets_are_read_as_wall_clock_time_and_said_so():
    raw = _series("a").astype({TIME: object})
    raw[TIME] = [f"{d:%Y-%m-%d}T00:00:00+05:00" for d in DATES]
    raw.loc[3, TIME] = f"{DATES[3]:%Y-%m-%d} 00:00:00+02:00"  # mixed offsets too
    frame, notes = check_schema(raw)
    assert list(frame[TIME]) == list(DATES)
    assert "30 ds value(s) carry a time zone or UTC offset" in notes[0] and "+05:00" in notes[0]


@pytest.mark.parametrize("dtype", ["object", "datetime64[us]"])
def test_dates_outside_the_supported_range_are_a_schema_error(dtype):
    raw = _series("a")
    values = raw[TIME].dt.strftime("%Y-%m-%d").astype(object)
    values[0] = "1500-01-07"
    raw[TIME] = values.to_numpy().astype(dtype)
    with pytest.raises(DataSchemaError) as info:
        check_schema(raw)
    assert "1 date(s) outside the supported range 1677-09-21 to 2262-04-11" in str(info.value)
    assert "1500-01-07" in str(info.value) and "(row 0)" in str(info.value)


def test_a_gap_fill_that_would_make_up_most_of_a_series_is_a_quarantine_reason():
    dates = DATES.copy().to_series()
    dates.iloc[0] = pd.Timestamp("1917-01-07")  # 2017 mistyped: a century of zero-filled weeks
    raw = _panel(_series("typo", dates.to_numpy()), _series("gappy", DATES[::2]))
    report = validate_history(raw, FREQ, AS_OF, ValidationSettings())
    assert _reasons(report) == {"typo": REASON_EXCESSIVE_GAPS}
    detail = report.quarantine["detail"].iloc[0]
    assert "above validation.max_gap_fill_share (50%)" in detail and "between 1917-01-07 and 2024-01-14" in detail
    assert "5583 of the 5613 periods between its first and last observation" in detail
    assert "gappy" in set(report.history[ID])  # half of it filled: at the limit, kept
    looser = validate_history(raw, FREQ, AS_OF, ValidationSettings(max_gap_fill_share=1.0))
    assert looser.quarantine.empty


def test_series_that_start_after_as_of_are_listed_with_why():
    as_of = DATES[9]
    raw = _panel(_series("later", DATES[20:]))
    report = validate_history(raw, FREQ, as_of, ValidationSettings())
    assert list(report.not_started[ID]) == ["later"]
    assert report.not_started["reason"].iloc[0] == REASON_NOT_STARTED
    assert report.not_started["detail"].iloc[0] == f"all 10 row(s) lie after as_of {as_of:%Y-%m-%d} (the first on {DATES[20]:%Y-%m-%d})"
    assert report.n_input_series == 2 and report.quarantine.empty


def test_an_as_of_with_a_zone_is_wall_clock_time_too():
    report = validate_history(_series("a"), FREQ, f"{DATES[9]:%Y-%m-%d}T00:00:00+09:00", ValidationSettings())
    assert report.history[TIME].max() == DATES[9]
