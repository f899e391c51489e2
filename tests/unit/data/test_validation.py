"""Validation at the boundary: the frame schema, every per-series rule, the circuit breaker."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from forecasting.config.settings import ValidationSettings
from forecasting.data.contract import ID, TARGET, TIME
from forecasting.data.validation import (
    REASON_DUPLICATES,
    REASON_GAPS,
    REASON_IRREGULAR,
    REASON_NEGATIVE,
    REASON_NON_FINITE,
    REASON_TOO_SHORT,
    CircuitBreakerError,
    DataSchemaError,
    ValidationReport,
    check_circuit_breaker,
    validate_history,
)

FREQ = "W-SUN"
DATES = pd.date_range("2024-01-07", periods=10, freq=FREQ)  # Sundays
AS_OF = DATES[-1]
HEALTHY = ["a", "b", "c"]
POISONED = "p"


def _series(uid: str, values, dates=DATES) -> pd.DataFrame:
    return pd.DataFrame({ID: uid, TIME: pd.DatetimeIndex(dates), TARGET: np.asarray(values, dtype=float)})


def _healthy() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.concat(
        [_series(uid, rng.uniform(1.0, 100.0, len(DATES))) for uid in HEALTHY], ignore_index=True
    )


def _panel(poisoned: pd.DataFrame) -> pd.DataFrame:
    """Healthy series with the poisoned one in the middle, rows shuffled."""
    frame = pd.concat([_healthy(), poisoned], ignore_index=True)
    return frame.sample(frac=1.0, random_state=1).reset_index(drop=True)


def _series_of(report: ValidationReport, uid: str) -> pd.DataFrame:
    return report.history[report.history[ID] == uid].reset_index(drop=True)


def _assert_healthy_untouched(report: ValidationReport) -> None:
    expected = _healthy()
    got = report.history[report.history[ID].isin(HEALTHY)].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected)
    assert not report.repairs[ID].isin(HEALTHY).any()
    assert not report.quarantine[ID].isin(HEALTHY).any()


def _repairs_of(report: ValidationReport, uid: str) -> dict[str, int]:
    rows = report.repairs[report.repairs[ID] == uid]
    return dict(zip(rows["repair"], rows["count"], strict=True))


# --------------------------------------------------------------------------- healthy input


def test_healthy_panel_comes_through_unchanged():
    raw = _panel(_series(POISONED, np.arange(1.0, 11.0)))
    before = raw.copy()
    report = validate_history(raw, FREQ, AS_OF, ValidationSettings())
    pd.testing.assert_frame_equal(raw, before)  # input not mutated
    expected = pd.concat([_healthy(), _series(POISONED, np.arange(1.0, 11.0))], ignore_index=True)
    pd.testing.assert_frame_equal(report.history, expected)
    assert report.history.dtypes.to_dict() == {
        ID: np.dtype(object), TIME: np.dtype("datetime64[ns]"), TARGET: np.dtype("float64")
    }
    assert report.quarantine.empty and list(report.quarantine.columns) == [ID, "reason", "detail"]
    assert report.repairs.empty and list(report.repairs.columns) == [ID, "repair", "count"]
    assert report.trimmed_rows == 0
    assert report.n_input_series == 4
    assert report.quarantine_share == 0.0


def test_ids_are_cast_to_str_and_extra_columns_dropped():
    raw = pd.DataFrame({ID: [1] * 3 + [22] * 3, TIME: list(DATES[:3]) * 2, TARGET: [1, 2, 3, 4, 5, 6], "x": 0})
    report = validate_history(raw, FREQ, DATES[2], ValidationSettings())
    assert report.history[ID].tolist() == ["1"] * 3 + ["22"] * 3
    assert all(isinstance(v, str) for v in report.history[ID])
    assert list(report.history.columns) == [ID, TIME, TARGET]
    assert report.history[TARGET].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


def test_microsecond_dates_and_string_dates_are_parsed():
    raw = _series("a", [1.0, 2.0, 3.0], DATES[:3])
    raw_us = raw.assign(**{TIME: raw[TIME].astype("datetime64[us]")})
    raw_str = raw.assign(**{TIME: raw[TIME].dt.strftime("%Y-%m-%d")})
    for frame in (raw_us, raw_str):
        report = validate_history(frame, FREQ, DATES[2], ValidationSettings())
        pd.testing.assert_frame_equal(report.history, raw)


# --------------------------------------------------------------------------- quarantine rules


def _with_duplicate() -> pd.DataFrame:
    frame = _series(POISONED, np.arange(1.0, 11.0))
    return pd.concat([frame, frame.iloc[[4]].assign(**{TARGET: 100.0})], ignore_index=True)


def _with_wednesday() -> pd.DataFrame:
    frame = _series(POISONED, np.arange(1.0, 11.0))
    extra = pd.DataFrame({ID: [POISONED], TIME: [DATES[3] + pd.Timedelta(days=3)], TARGET: [7.0]})
    return pd.concat([frame, extra], ignore_index=True)


def _with_gap() -> pd.DataFrame:
    frame = _series(POISONED, np.arange(1.0, 11.0))
    return frame.drop(index=[4, 5])


def _ending_early() -> pd.DataFrame:
    return _series(POISONED, np.arange(1.0, 8.0), DATES[:7])  # 3 trailing periods up to as_of


QUARANTINE_CASES = {
    "nan": (_series(POISONED, [1, 2, np.nan, 4, 5, 6, 7, 8, 9, 10]), {}, REASON_NON_FINITE, "2024-01-21"),
    "inf": (_series(POISONED, [1, 2, 3, 4, 5, 6, 7, 8, np.inf, 10]), {}, REASON_NON_FINITE, "2024-03-03"),
    "wednesday": (_with_wednesday(), {}, REASON_IRREGULAR, "2024-01-31"),
    "time_of_day": (
        _series(POISONED, np.arange(1.0, 11.0), DATES + pd.Timedelta(hours=6)), {}, REASON_IRREGULAR, "06:00"
    ),
    "duplicate": (_with_duplicate(), {}, REASON_DUPLICATES, "2024-02-04 (x2)"),
    "negative": (
        _series(POISONED, [1, 2, 3, -4, 5, 6, 7, 8, 9, 10]), {"negative_values": "quarantine"}, REASON_NEGATIVE, "-4"
    ),
    "too_short": (_series(POISONED, [3.0], DATES[-1:]), {}, REASON_TOO_SHORT, "1 observation"),
    "interior_gap": (_with_gap(), {"gaps": "quarantine"}, REASON_GAPS, "2 missing period(s)"),
    "trailing_gap": (_ending_early(), {"gaps": "quarantine"}, REASON_GAPS, "3 missing period(s)"),
}


@pytest.mark.parametrize("case", list(QUARANTINE_CASES))
def test_poisoned_series_is_quarantined_and_healthy_ones_untouched(case):
    poisoned, overrides, reason, detail_part = QUARANTINE_CASES[case]
    report = validate_history(_panel(poisoned), FREQ, AS_OF, ValidationSettings(**overrides))
    _assert_healthy_untouched(report)
    assert report.quarantine[ID].tolist() == [POISONED]
    assert report.quarantine["reason"].tolist() == [reason]
    assert detail_part in report.quarantine["detail"].iloc[0]
    assert POISONED not in set(report.history[ID])
    assert report.repairs.empty
    assert report.n_input_series == 4
    assert report.quarantine_share == pytest.approx(0.25)


def test_first_failing_rule_gives_the_reason():
    poisoned = _with_duplicate()
    poisoned.loc[0, TARGET] = np.nan  # also non-finite: that rule runs first
    report = validate_history(_panel(poisoned), FREQ, AS_OF, ValidationSettings())
    assert report.quarantine["reason"].tolist() == [REASON_NON_FINITE]


def test_trailing_gap_alone_is_a_gap():
    """A series that stopped reporting has missing periods up to as_of even without interior holes."""
    report = validate_history(_panel(_ending_early()), FREQ, AS_OF, ValidationSettings(gaps="quarantine"))
    assert "(3 trailing)" in report.quarantine["detail"].iloc[0]
    assert "first missing 2024-02-25" in report.quarantine["detail"].iloc[0]


# --------------------------------------------------------------------------- repairs


def test_non_finite_rows_dropped_then_gap_filled():
    values = [1, 2, np.nan, 4, 5, 6, 7, 8, 9, 10]
    report = validate_history(
        _panel(_series(POISONED, values)), FREQ, AS_OF, ValidationSettings(non_finite="drop")
    )
    _assert_healthy_untouched(report)
    assert report.quarantine.empty
    assert _repairs_of(report, POISONED) == {"dropped_non_finite": 1, "gap_filled": 1}
    assert _series_of(report, POISONED)[TARGET].tolist() == [1, 2, 0, 4, 5, 6, 7, 8, 9, 10]


def test_irregular_rows_dropped():
    report = validate_history(_panel(_with_wednesday()), FREQ, AS_OF, ValidationSettings(irregular_dates="drop"))
    _assert_healthy_untouched(report)
    assert _repairs_of(report, POISONED) == {"dropped_irregular": 1}
    pd.testing.assert_frame_equal(_series_of(report, POISONED), _series(POISONED, np.arange(1.0, 11.0)))


@pytest.mark.parametrize(("policy", "value", "repair"), [("sum", 105.0, "duplicates_summed"), ("last", 100.0, "duplicates_last_kept")])
def test_duplicates_repaired(policy, value, repair):
    report = validate_history(_panel(_with_duplicate()), FREQ, AS_OF, ValidationSettings(duplicates=policy))
    _assert_healthy_untouched(report)
    assert report.quarantine.empty
    assert _repairs_of(report, POISONED) == {repair: 1}
    expected = np.arange(1.0, 11.0)
    expected[4] = value
    pd.testing.assert_frame_equal(_series_of(report, POISONED), _series(POISONED, expected))


def test_duplicates_last_keeps_the_last_row_in_input_order():
    frame = _series(POISONED, np.arange(1.0, 11.0))
    dup = pd.concat([frame.iloc[[4]].assign(**{TARGET: 50.0}), frame, frame.iloc[[4]].assign(**{TARGET: 70.0})])
    healthy = _healthy()
    report = validate_history(pd.concat([healthy, dup], ignore_index=True), FREQ, AS_OF, ValidationSettings(duplicates="last"))
    assert _series_of(report, POISONED)[TARGET].iloc[4] == 70.0
    assert _repairs_of(report, POISONED) == {"duplicates_last_kept": 2}


def test_negative_values_clipped_or_allowed():
    values = [1, -2, 3, -4, 5, 6, 7, 8, 9, 10]
    clipped = validate_history(_panel(_series(POISONED, values)), FREQ, AS_OF, ValidationSettings(negative_values="clip"))
    _assert_healthy_untouched(clipped)
    assert _repairs_of(clipped, POISONED) == {"clipped_negative": 2}
    assert _series_of(clipped, POISONED)[TARGET].tolist() == [1, 0, 3, 0, 5, 6, 7, 8, 9, 10]

    allowed = validate_history(_panel(_series(POISONED, values)), FREQ, AS_OF, ValidationSettings())
    _assert_healthy_untouched(allowed)
    assert allowed.repairs.empty and allowed.quarantine.empty
    assert _series_of(allowed, POISONED)[TARGET].tolist() == values


def _gappy(uid: str) -> pd.DataFrame:
    """Observed at periods 0, 1, 4, 5, 6 of 10: two interior and three trailing periods missing."""
    return _series(uid, [2.0, 4.0, 10.0, 12.0, 6.0], DATES[[0, 1, 4, 5, 6]])


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("fill_zero", [2, 4, 0, 0, 10, 12, 6, 0, 0, 0]),
        ("interpolate", [2, 4, 6, 8, 10, 12, 6, 6, 6, 6]),
        ("forward_fill", [2, 4, 4, 4, 10, 12, 6, 6, 6, 6]),
    ],
)
@pytest.mark.parametrize("uid", [POISONED, "aa"])  # last in sort order, and between two healthy ones
def test_gaps_filled_up_to_as_of(policy, expected, uid):
    report = validate_history(_panel(_gappy(uid)), FREQ, AS_OF, ValidationSettings(gaps=policy))
    _assert_healthy_untouched(report)
    assert report.quarantine.empty
    assert _repairs_of(report, uid) == {"gap_filled": 5}
    pd.testing.assert_frame_equal(_series_of(report, uid), _series(uid, expected))


def test_series_starting_late_is_not_padded_before_its_first_date():
    late = _series(POISONED, [5.0, 6.0, 7.0], DATES[-3:])
    report = validate_history(_panel(late), FREQ, AS_OF, ValidationSettings())
    pd.testing.assert_frame_equal(_series_of(report, POISONED), late)
    assert report.repairs.empty


def test_too_short_after_cleaning_quarantines_and_drops_its_repairs():
    poisoned = _series(POISONED, [np.nan, np.nan, 3.0], DATES[-3:])
    report = validate_history(_panel(poisoned), FREQ, AS_OF, ValidationSettings(non_finite="drop"))
    assert report.quarantine["reason"].tolist() == [REASON_TOO_SHORT]
    assert report.repairs.empty  # repairs are reported for kept series only


def test_min_observations_policy():
    poisoned = _series(POISONED, [1.0, 2.0, 3.0], DATES[-3:])
    assert validate_history(_panel(poisoned), FREQ, AS_OF, ValidationSettings(min_observations=3)).quarantine.empty
    report = validate_history(_panel(poisoned), FREQ, AS_OF, ValidationSettings(min_observations=4))
    assert report.quarantine["reason"].tolist() == [REASON_TOO_SHORT]


# --------------------------------------------------------------------------- trimming


def test_rows_after_as_of_are_trimmed_and_counted():
    as_of = DATES[6]
    future_only = _series("zz_future", [1.0, 2.0], DATES[8:])
    report = validate_history(_panel(future_only), FREQ, as_of, ValidationSettings())
    assert report.trimmed_rows == 3 * 3 + 2
    assert report.quarantine.empty
    assert report.n_input_series == 3  # a series that only starts after as_of does not exist yet
    assert report.history[TIME].max() == as_of
    expected = _healthy()
    pd.testing.assert_frame_equal(report.history, expected[expected[TIME] <= as_of].reset_index(drop=True))


def test_as_of_between_grid_dates_ends_the_grid_at_the_last_period_before_it():
    as_of = DATES[6] + pd.Timedelta(days=3)  # a Wednesday
    report = validate_history(_panel(_ending_early()), FREQ, as_of, ValidationSettings())
    assert report.history[TIME].max() == DATES[6]
    assert report.repairs.empty


# --------------------------------------------------------------------------- schema errors


def test_missing_column_is_a_schema_error():
    raw = _healthy().drop(columns=[TIME])
    with pytest.raises(DataSchemaError) as info:
        validate_history(raw, FREQ, AS_OF, ValidationSettings())
    message = str(info.value)
    assert "missing column 'ds'" in message
    assert "columns present: unique_id, y" in message
    assert "\n" in message and "SchemaErrors" not in message


def test_unparseable_dates_are_a_schema_error_naming_the_values():
    raw = _healthy()
    raw[TIME] = raw[TIME].dt.strftime("%Y-%m-%d").astype(object)
    raw.loc[3, TIME] = "not a date"
    raw.loc[7, TIME] = "2024-13-45"
    with pytest.raises(DataSchemaError) as info:
        validate_history(raw, FREQ, AS_OF, ValidationSettings())
    message = str(info.value)
    assert "column 'ds': 2 value(s) cannot be parsed as dates" in message
    assert "'not a date' (row 3)" in message and "'2024-13-45' (row 7)" in message
    assert "wrong type" not in message  # the dtype failure is explained by the parse failure


def test_non_numeric_y_and_missing_ids_are_reported_together():
    raw = _healthy().astype({TARGET: object, ID: object})
    raw.loc[2, TARGET] = "twelve"
    raw.loc[5, ID] = None
    with pytest.raises(DataSchemaError) as info:
        validate_history(raw, FREQ, AS_OF, ValidationSettings())
    lines = str(info.value).splitlines()
    assert any("column 'y'" in line and "not numeric" in line and "'twelve'" in line for line in lines)
    assert any("column 'unique_id'" in line and "missing value" in line for line in lines)


def test_empty_input_gives_an_empty_report():
    report = validate_history(_healthy().iloc[:0], FREQ, AS_OF, ValidationSettings())
    assert report.history.empty and list(report.history.columns) == [ID, TIME, TARGET]
    assert report.n_input_series == 0 and report.quarantine_share == 0.0


# --------------------------------------------------------------------------- circuit breaker


def _report_with(n_quarantined: int, n_series: int) -> ValidationReport:
    reasons = [REASON_GAPS, REASON_GAPS, REASON_TOO_SHORT, REASON_NON_FINITE]
    quarantine = pd.DataFrame(
        {
            ID: [f"s{i}" for i in range(n_quarantined)],
            "reason": [reasons[i % len(reasons)] for i in range(n_quarantined)],
            "detail": "",
        }
    )
    return ValidationReport(history=_healthy(), quarantine=quarantine, n_input_series=n_series)


def test_circuit_breaker_silent_at_or_below_the_share():
    check_circuit_breaker(_report_with(0, 10), 0.2)
    check_circuit_breaker(_report_with(2, 10), 0.2)  # exactly at the limit
    check_circuit_breaker(_report_with(0, 0), 0.0)


def test_circuit_breaker_raises_above_the_share():
    with pytest.raises(CircuitBreakerError) as info:
        check_circuit_breaker(_report_with(3, 10), 0.2)
    message = str(info.value)
    assert "30.0%" in message and "20.0%" in message and "3 of 10" in message
    assert "gaps 2" in message and "too_short 1" in message
    assert message.index("gaps 2") < message.index("too_short 1")


def test_circuit_breaker_on_a_real_validation():
    poisoned = _series(POISONED, [np.nan] * 10)
    report = validate_history(_panel(poisoned), FREQ, AS_OF, ValidationSettings())
    check_circuit_breaker(report, 0.25)
    with pytest.raises(CircuitBreakerError, match="non_finite_values 1"):
        check_circuit_breaker(report, 0.2)


# --------------------------------------------------------------------------- real data


@pytest.mark.shared_data
def test_walmart_panel_validates_without_tripping_the_breaker(shared_data):
    raw = pd.read_parquet(shared_data / "walmart" / "sales.parquet")
    assert {ID, TIME, TARGET} <= set(raw.columns)
    as_of = pd.Timestamp(raw[TIME].max())
    policy = ValidationSettings()

    start = time.perf_counter()
    report = validate_history(raw, "W-FRI", as_of, policy)
    elapsed = time.perf_counter() - start

    print(f"\nWalmart: {report.n_input_series} series, {len(report.history)} clean rows, "
          f"validated in {elapsed:.2f} s")
    print(f"quarantined {len(report.quarantine)} ({report.quarantine_share:.2%}):")
    print(report.reason_counts().to_string())
    print("repairs:")
    print(report.repair_counts().to_string())

    check_circuit_breaker(report, policy.max_quarantine_share)
    assert report.n_input_series == raw[ID].nunique()
    kept = set(report.history[ID])
    assert kept.isdisjoint(report.quarantine[ID])
    assert len(kept) + len(report.quarantine) == report.n_input_series
    assert report.history[TIME].max() == as_of
    assert report.trimmed_rows == 0
    sizes = report.history.groupby(ID)[TIME].agg(["min", "size"])
    expected = ((as_of - sizes["min"]) / pd.Timedelta(weeks=1)).astype(int) + 1
    assert (sizes["size"] == expected).all()  # one row per week from first date to as_of
