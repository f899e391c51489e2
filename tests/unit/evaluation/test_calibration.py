"""Pooled split-conformal calibration: order statistics, nominal coverage on a known error law, bins."""

from __future__ import annotations

import numpy as np
import pytest

from forecasting.evaluation.calibration import (
    Calibrator,
    conformal_quantile,
    coverage_by_step,
    error_scale,
    fit_binned_calibrator,
    fit_calibrator,
)

QUANTILES = (0.1, 0.5, 0.9)
Z90 = 1.2815515655446004


# --- the conservative order statistic ---------------------------------------------------


@pytest.mark.parametrize(
    ("q", "expected"),
    [(0.9, 10.0), (0.8, 9.0), (0.1, 1.0), (0.2, 2.0), (0.5, 5.5), (0.95, 10.0), (0.05, 1.0)],
)
def test_conformal_quantile_takes_the_corrected_order_statistic(q: float, expected: float) -> None:
    scores = np.array([7, 3, 10, 1, 5, 2, 8, 9, 4, 6, np.nan], dtype=float)  # 1..10, one NaN ignored
    assert conformal_quantile(scores, q) == expected


def test_conformal_quantile_of_nothing_is_zero() -> None:
    assert conformal_quantile(np.array([np.nan]), 0.9) == 0.0


def test_the_finite_sample_correction_keeps_nominal_coverage_where_plain_quantiles_fall_short() -> None:
    """19 exchangeable scores per trial: the corrected pair covers 80 % exactly, interpolated quantiles 72 %."""
    rng = np.random.default_rng(0)
    trials, n = 4000, 19
    scores = rng.normal(size=(trials, n))
    new = rng.normal(size=trials)
    lower = np.array([conformal_quantile(s, 0.1) for s in scores])
    upper = np.array([conformal_quantile(s, 0.9) for s in scores])
    corrected = np.mean((new >= lower) & (new <= upper))
    plain = np.mean((new >= np.quantile(scores, 0.1, axis=1)) & (new <= np.quantile(scores, 0.9, axis=1)))
    standard_error = np.sqrt(0.8 * 0.2 / trials)
    assert abs(corrected - 0.8) < 3 * standard_error
    assert plain < 0.8 - 3 * standard_error


# --- calibration on a panel with a known error law ---------------------------------------


def _panel(rng: np.random.Generator, n_series: int, n_windows: int, horizon: int, native_share: float):
    """Rows of (raw quantiles, actual, scale): errors N(0, sigma_i * sqrt(step)), native intervals too narrow."""
    sigma = rng.lognormal(0.0, 0.6, n_series)
    level = rng.uniform(50, 150, n_series)
    rows = n_series * n_windows
    series = np.repeat(np.arange(n_series), n_windows)
    growth = np.sqrt(np.arange(1, horizon + 1))
    median = level[series][:, None] + rng.normal(0, 5, (rows, 1))
    actual = median + rng.normal(size=(rows, horizon)) * sigma[series][:, None] * growth
    half = native_share * Z90 * sigma[series][:, None] * growth  # a model that believes in a smaller sigma
    raw = np.stack([median - half, np.broadcast_to(median, (rows, horizon)), median + half], axis=2)
    scale = sigma[series] * 1.13  # the series' own scale (a MASE denominator is of this order)
    return raw, actual, scale


@pytest.mark.parametrize("native", [True, False])
def test_calibration_reaches_nominal_coverage_on_new_windows(native: bool) -> None:
    rng = np.random.default_rng(1)
    horizon = 6
    raw, actual, scale = _panel(rng, 120, 4, horizon, native_share=0.5)
    test_raw, test_actual, test_scale = _panel(rng, 400, 2, horizon, native_share=0.5)
    if not native:  # a model without native quantiles: only its median
        raw[:, :, [0, 2]] = raw[:, :, [1]]
        test_raw[:, :, [0, 2]] = test_raw[:, :, [1]]
    spread = error_scale(raw if native else np.full_like(raw, np.nan), QUANTILES, scale)
    calibrator = fit_calibrator(raw, actual, spread, QUANTILES)
    test_spread = error_scale(test_raw if native else np.full_like(test_raw, np.nan), QUANTILES, test_scale)
    calibrated = calibrator.apply(test_raw, test_spread)
    inside = (test_actual >= calibrated[:, :, 0]) & (test_actual <= calibrated[:, :, 2])
    n = inside.size
    assert abs(inside.mean() - 0.8) < 3 * np.sqrt(0.16 / n) + 0.01  # sampling error of the test rows
    by_step, counts = coverage_by_step(calibrated, test_actual, 0, 2)
    assert np.all(counts == test_actual.shape[0])
    assert np.all(np.abs(by_step - 0.8) < 0.06)  # every step, not only on average
    if native:  # the raw intervals were far too narrow: calibration is what fixed them
        raw_inside = (test_actual >= test_raw[:, :, 0]) & (test_actual <= test_raw[:, :, 2])
        assert raw_inside.mean() < 0.55


def test_the_median_is_never_moved_and_offsets_grow_with_the_horizon() -> None:
    rng = np.random.default_rng(2)
    raw, actual, scale = _panel(rng, 80, 3, 5, native_share=1.0)
    raw[:, :, [0, 2]] = raw[:, :, [1]]
    calibrator = fit_calibrator(raw, actual, np.broadcast_to(scale[:, None], actual.shape), QUANTILES)
    assert np.all(calibrator.offsets[:, 1] == 0.0)
    assert np.all(np.diff(calibrator.offsets[:, 2]) > -0.2)  # upper offsets grow with sqrt(step), roughly
    assert calibrator.offsets[-1, 2] > calibrator.offsets[0, 2]
    assert np.all(calibrator.offsets[:, 0] < 0)


def test_a_small_step_pool_borrows_its_neighbours_and_no_rows_means_no_change() -> None:
    raw = np.zeros((4, 3, 3))
    actual = np.tile(np.array([[1.0, 2.0, 3.0]]), (4, 1))
    calibrator = fit_calibrator(raw, actual, np.ones((4, 3)), QUANTILES, min_scores=10)
    assert list(calibrator.n_scores) == [12, 12, 12]  # 4 rows per step: each step took all three
    empty = fit_calibrator(np.empty((0, 3, 3)), np.empty((0, 3)), np.empty((0, 3)), QUANTILES)
    assert np.all(empty.offsets == 0) and isinstance(empty, Calibrator)


def test_error_scale_uses_the_native_interval_floored_at_a_share_of_the_scale() -> None:
    raw = np.array([[[90.0, 100.0, 110.0], [100.0, 100.0, 100.0], [np.nan, 100.0, np.nan]]])
    spread = error_scale(raw, QUANTILES, np.array([20.0]))
    assert spread[0, 0] == pytest.approx(10.0 / Z90)
    assert spread[0, 1] == pytest.approx(2.0)  # a zero-width interval: 10 % of the scale
    assert spread[0, 2] == 20.0  # no native interval: the scale


def test_bins_of_relative_volatility_get_their_own_offsets() -> None:
    """Stable series and erratic ones whose errors differ relative to the same spread: one bin would mis-cover both."""
    rng = np.random.default_rng(3)
    rows, horizon = 600, 4
    volatility = np.r_[np.full(rows // 2, 0.1), np.full(rows // 2, 1.0)]
    factor = np.where(volatility < 0.5, 0.5, 2.0)
    raw = np.zeros((rows, horizon, 3))
    spread = np.ones((rows, horizon))
    actual = rng.normal(size=(rows, horizon)) * factor[:, None]
    binned = fit_binned_calibrator(raw, actual, spread, volatility, QUANTILES, max_bins=2, min_rows_per_bin=100)
    single = fit_binned_calibrator(raw, actual, spread, volatility, QUANTILES, max_bins=1)
    assert len(binned.calibrators) == 2 and len(single.calibrators) == 1
    new = rng.normal(size=(rows, horizon)) * factor[:, None]

    def coverage(calibrator, rows_of) -> float:
        calibrated = calibrator.apply(raw, spread, volatility)
        inside = (new >= calibrated[:, :, 0]) & (new <= calibrated[:, :, 2])
        return float(inside[rows_of].mean())

    stable, erratic = volatility < 0.5, volatility > 0.5
    assert abs(coverage(binned, stable) - 0.8) < 0.05 and abs(coverage(binned, erratic) - 0.8) < 0.05
    assert coverage(single, stable) > 0.95 and coverage(single, erratic) < 0.65
    assert [b["bin"] for b in binned.describe()] == [0, 1]


def test_tied_volatilities_make_one_bin_that_calibrates_everything() -> None:
    rng = np.random.default_rng(4)
    raw, spread = np.zeros((300, 2, 3)), np.ones((300, 2))
    actual = rng.normal(size=(300, 2))
    binned = fit_binned_calibrator(raw, actual, spread, np.full(300, 0.3), QUANTILES, max_bins=3, min_rows_per_bin=50)
    assert len(binned.calibrators) == 1
    lower = binned.apply(raw[:5], spread[:5], np.full(5, 0.01))  # a series calmer than any seen: same offsets
    assert np.all(lower[:, :, 2] > 0.5)
