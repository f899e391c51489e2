"""Backtest windows, candidate ranking and the median ensemble, and the quality gate."""

from __future__ import annotations

import numpy as np
import pytest

from forecasting.evaluation.quality import quality_gate
from forecasting.evaluation.selection import median_ensemble, rank_candidates
from forecasting.evaluation.windows import Window, backtest_span, backtest_windows

# --- windows ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_obs", "horizon", "n_windows", "step", "train_ends"),
    [
        (20, 4, 1, 4, [16]),
        (20, 4, 2, 4, [12, 16]),
        (20, 4, 3, 4, [8, 12, 16]),
        (20, 4, 3, 2, [12, 14, 16]),  # step < horizon: overlapping test windows
        (10, 3, 3, 1, [5, 6, 7]),
        (20, 2, 3, 5, [8, 13, 18]),  # step > horizon: gaps between test windows
    ],
)
def test_backtest_window_cutoffs(
    n_obs: int, horizon: int, n_windows: int, step: int, train_ends: list[int]
) -> None:
    windows = backtest_windows(n_obs, horizon, n_windows, step)
    assert windows == [
        Window(index=i, train_end=e, horizon=horizon) for i, e in enumerate(train_ends)
    ]
    assert windows[-1].test_slice.stop == n_obs
    assert windows[-1].test_slice == slice(n_obs - horizon, n_obs)
    assert all(w.test_slice.stop - w.test_slice.start == horizon for w in windows)
    assert backtest_span(horizon, n_windows, step) == n_obs - windows[0].train_end


def test_window_test_slice_selects_the_horizon_after_the_cutoff() -> None:
    y = np.arange(12)
    window = backtest_windows(12, 3, 2, 3)[0]
    np.testing.assert_array_equal(y[: window.train_end], np.arange(6))
    np.testing.assert_array_equal(y[window.test_slice], [6, 7, 8])


def test_zero_windows_is_empty() -> None:
    assert backtest_windows(20, 4, 0, 4) == []


@pytest.mark.parametrize(
    ("horizon", "n_windows", "step", "span"),
    [(4, 1, 4, 4), (4, 3, 4, 12), (4, 3, 2, 8), (3, 3, 1, 5), (2, 3, 5, 12)],
)
def test_backtest_span(horizon: int, n_windows: int, step: int, span: int) -> None:
    assert backtest_span(horizon, n_windows, step) == span


# --- ranking and the ensemble -------------------------------------------------------


def test_rank_candidates_ascending() -> None:
    assert rank_candidates({"a": 3.0, "b": 1.0, "c": 2.0}, ["a", "b", "c"]) == ["b", "c", "a"]


def test_rank_candidates_ties_follow_config_order() -> None:
    losses = {"a": 2.0, "b": 1.0, "c": 1.0, "d": 1.0}
    assert rank_candidates(losses, ["d", "c", "b", "a"]) == ["d", "c", "b", "a"]
    assert rank_candidates(losses, ["a", "b", "c", "d"]) == ["b", "c", "d", "a"]
    # float noise below 1e-12 is a tie too
    assert rank_candidates({"x": 1.0 + 1e-15, "y": 1.0}, ["x", "y"]) == ["x", "y"]


def test_rank_candidates_unlisted_labels_lose_ties() -> None:
    assert rank_candidates({"extra": 1.0, "a": 1.0}, ["a"]) == ["a", "extra"]


def test_rank_candidates_excludes_non_finite() -> None:
    losses = {"a": 2.0, "nan": float("nan"), "inf": float("inf"), "ninf": float("-inf"), "b": 0.5}
    assert rank_candidates(losses, list(losses)) == ["b", "a"]
    assert rank_candidates({"nan": float("nan")}, ["nan"]) == []
    assert rank_candidates({}, []) == []


def test_median_ensemble_is_quantile_wise_median() -> None:
    forecasts = [
        {0.9: np.array([5.0, 9.0]), 0.1: np.array([1.0, 2.0]), 0.5: np.array([3.0, 4.0])},
        {0.1: np.array([0.0, 6.0]), 0.5: np.array([2.0, 8.0]), 0.9: np.array([4.0, 10.0])},
        {0.1: np.array([2.0, 3.0]), 0.5: np.array([7.0, 5.0]), 0.9: np.array([9.0, 6.0])},
    ]
    out = median_ensemble(forecasts)
    assert list(out) == [0.1, 0.5, 0.9]
    np.testing.assert_array_equal(out[0.1], [1.0, 3.0])
    np.testing.assert_array_equal(out[0.5], [3.0, 5.0])
    np.testing.assert_array_equal(out[0.9], [5.0, 9.0])


def test_median_ensemble_of_two_is_the_mean() -> None:
    out = median_ensemble([{0.5: np.array([1.0, 10.0])}, {0.5: np.array([3.0, 20.0])}])
    np.testing.assert_array_equal(out[0.5], [2.0, 15.0])


def test_median_ensemble_does_not_mutate_members() -> None:
    first = {0.5: np.array([1.0, 2.0])}
    second = {0.5: np.array([3.0, 4.0])}
    median_ensemble([first, second, {0.5: np.array([0.0, 0.0])}])
    np.testing.assert_array_equal(first[0.5], [1.0, 2.0])
    np.testing.assert_array_equal(second[0.5], [3.0, 4.0])


# --- quality gate -------------------------------------------------------------------

HISTORY = np.array([2.0, 5.0, 10.0, 4.0])


def _clean() -> dict[float, np.ndarray]:
    return {0.1: np.array([1.0, 2.0]), 0.5: np.array([3.0, 4.0]), 0.9: np.array([5.0, 6.0])}


def test_clean_forecast_passes_untouched() -> None:
    forecast = _clean()
    result = quality_gate(forecast, HISTORY, explosion_factor=3.0)
    assert result.failure is None
    assert result.repairs == []
    assert list(result.quantiles) == [0.1, 0.5, 0.9]
    for q, values in _clean().items():
        np.testing.assert_array_equal(result.quantiles[q], values)
        np.testing.assert_array_equal(forecast[q], values)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_forecast_fails(bad: float) -> None:
    forecast = _clean()
    forecast[0.5][1] = bad
    result = quality_gate(forecast, HISTORY, explosion_factor=3.0)
    assert result.failure == "non_finite_forecast"
    assert result.repairs == []


@pytest.mark.parametrize("value", [30.1, -30.1, 1e6])
def test_explosion_fails(value: float) -> None:
    forecast = _clean()
    forecast[0.9][0] = value  # beyond 3 x max |history| = 30
    result = quality_gate(forecast, HISTORY, explosion_factor=3.0)
    assert result.failure == "forecast_explosion"


def test_value_at_the_explosion_ceiling_passes() -> None:
    forecast = _clean()
    forecast[0.9][0] = 30.0
    assert quality_gate(forecast, HISTORY, explosion_factor=3.0).failure is None


def test_explosion_ceiling_uses_absolute_history() -> None:
    forecast = {0.5: np.array([-25.0, 25.0])}
    assert quality_gate(forecast, np.array([-10.0, 1.0]), 3.0).failure is None
    assert quality_gate(forecast, np.array([-10.0, 1.0]), 2.0).failure == "forecast_explosion"


def test_crossing_quantiles_are_sorted_with_a_repair_note() -> None:
    forecast = {0.1: np.array([5.0, 1.0]), 0.5: np.array([4.0, 2.0]), 0.9: np.array([6.0, 3.0])}
    result = quality_gate(forecast, HISTORY, explosion_factor=3.0)
    assert result.failure is None
    assert result.repairs == ["sorted_quantiles"]
    np.testing.assert_array_equal(result.quantiles[0.1], [4.0, 1.0])
    np.testing.assert_array_equal(result.quantiles[0.5], [5.0, 2.0])
    np.testing.assert_array_equal(result.quantiles[0.9], [6.0, 3.0])


def test_crossing_is_judged_in_quantile_order_not_insertion_order() -> None:
    forecast = {0.9: np.array([5.0]), 0.1: np.array([1.0]), 0.5: np.array([3.0])}
    result = quality_gate(forecast, HISTORY, explosion_factor=3.0)
    assert result.repairs == []
    assert {q: float(v[0]) for q, v in result.quantiles.items()} == {0.1: 1.0, 0.5: 3.0, 0.9: 5.0}


def test_negatives_are_clipped_when_history_is_non_negative() -> None:
    forecast = {0.1: np.array([-2.0, 1.0]), 0.5: np.array([-1.0, 2.0]), 0.9: np.array([3.0, 4.0])}
    result = quality_gate(forecast, np.array([0.0, 3.0, 5.0]), explosion_factor=3.0)
    assert result.failure is None
    assert result.repairs == ["clipped_negative"]
    np.testing.assert_array_equal(result.quantiles[0.1], [0.0, 1.0])
    np.testing.assert_array_equal(result.quantiles[0.5], [0.0, 2.0])
    np.testing.assert_array_equal(result.quantiles[0.9], [3.0, 4.0])


def test_negatives_are_kept_when_history_has_negatives() -> None:
    forecast = {0.1: np.array([-2.0, 1.0]), 0.5: np.array([-1.0, 2.0]), 0.9: np.array([3.0, 4.0])}
    result = quality_gate(forecast, np.array([-1.0, 3.0, 5.0]), explosion_factor=3.0)
    assert result.failure is None
    assert result.repairs == []
    np.testing.assert_array_equal(result.quantiles[0.1], [-2.0, 1.0])


def test_sorting_then_clipping_both_noted_in_order() -> None:
    forecast = {0.1: np.array([1.0]), 0.5: np.array([-1.0]), 0.9: np.array([2.0])}
    result = quality_gate(forecast, np.array([0.0, 4.0]), explosion_factor=3.0)
    assert result.repairs == ["sorted_quantiles", "clipped_negative"]
    assert [float(result.quantiles[q][0]) for q in (0.1, 0.5, 0.9)] == [0.0, 1.0, 2.0]


def test_failures_come_before_repairs() -> None:
    forecast = {0.1: np.array([5.0]), 0.5: np.array([np.nan]), 0.9: np.array([-1.0])}
    result = quality_gate(forecast, HISTORY, explosion_factor=3.0)
    assert result.failure == "non_finite_forecast"
    assert result.repairs == []
    assert result.quantiles is forecast
