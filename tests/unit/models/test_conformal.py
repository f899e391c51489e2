"""Split-conformal quantiles for models without native ones, on hand-computed cases."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest

from forecasting.models import conformal
from forecasting.models.base import Forecast, ForecastModel, HistoryTooShortError
from forecasting.models.conformal import (
    conformal_quantiles,
    conformity_scores,
    predict_with_quantiles,
)
from forecasting.models.statsforecast_models import Naive, WindowAverage

QUANTILES = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)


class LastValue(ForecastModel):
    """Predicts the last observed value for every step (no native quantiles)."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def _fit(self, y: np.ndarray, X: np.ndarray | None) -> None:
        self.last_ = float(y[-1])

    def _predict(
        self, h: int, quantiles: tuple[float, ...], X_future: np.ndarray | None
    ) -> Forecast:
        return Forecast(point=np.full(h, self.last_ + self.offset))


class NeedsFive(LastValue):
    tags: ClassVar[dict[str, Any]] = {"min_history": 5}


class NativeBand(ForecastModel):
    """Native quantiles: the last value +/- (q - 0.5) * 10, but only for the quantiles it knows."""

    tags: ClassVar[dict[str, Any]] = {"native_quantiles": True}

    def __init__(self, known: tuple[float, ...] = (0.1, 0.5, 0.9)) -> None:
        self.known = known

    def _fit(self, y: np.ndarray, X: np.ndarray | None) -> None:
        self.last_ = float(y[-1])

    def _predict(
        self, h: int, quantiles: tuple[float, ...], X_future: np.ndarray | None
    ) -> Forecast:
        point = np.full(h, self.last_)
        return Forecast(point, {q: point + (q - 0.5) * 10 for q in quantiles if q in self.known})


def _squares(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.float64) ** 2


# --- conformity scores --------------------------------------------------------------


def test_scores_on_a_linear_series_are_the_step_times_slope() -> None:
    y = 3.0 * np.arange(20) + 7.0
    scores = conformity_scores(LastValue(), y, h=4, n_windows=3)
    assert scores.shape == (3, 4)
    np.testing.assert_allclose(scores, np.tile([3.0, 6.0, 9.0, 12.0], (3, 1)))


def test_scores_are_per_window_oldest_first() -> None:
    # y = t^2, n=10, h=2, two windows: cutoffs at 6 and 8.
    # window 0: last y[5]=25, actual y[6]=36, y[7]=49 -> |25-36|, |25-49| = 11, 24
    # window 1: last y[7]=49, actual y[8]=64, y[9]=81 -> 15, 32
    scores = conformity_scores(LastValue(), _squares(10), h=2, n_windows=2)
    np.testing.assert_array_equal(scores, [[11.0, 24.0], [15.0, 32.0]])


def test_scores_are_absolute_errors() -> None:
    scores = conformity_scores(LastValue(offset=100.0), _squares(10), h=2, n_windows=2)
    np.testing.assert_array_equal(scores, [[89.0, 76.0], [85.0, 68.0]])


def test_windows_are_capped_by_the_history() -> None:
    # 7 points, h=3: only (7 - 1) // 3 = 2 windows fit, cutoffs at 1 and 4
    scores = conformity_scores(LastValue(), _squares(7), h=3, n_windows=5)
    np.testing.assert_array_equal(scores, [[1.0, 4.0, 9.0], [7.0, 16.0, 27.0]])


def test_windows_leave_the_model_its_minimum_history() -> None:
    # NeedsFive on 10 points, h=3: a cutoff at 1 or 4 is too short; only the one at 7 is usable
    scores = conformity_scores(NeedsFive(), _squares(10), h=3, n_windows=3)
    np.testing.assert_array_equal(scores, [[13.0, 28.0, 45.0]])


def test_scores_do_not_fit_the_model_itself() -> None:
    model = LastValue()
    conformity_scores(model, _squares(10), h=2, n_windows=2)
    assert not hasattr(model, "n_obs_")


@pytest.mark.parametrize(("model", "n"), [(LastValue(), 3), (LastValue(), 1), (NeedsFive(), 7)])
def test_too_short_history_for_one_window_raises(model: ForecastModel, n: int) -> None:
    with pytest.raises(HistoryTooShortError, match="conformal"):
        conformity_scores(model, _squares(n), h=3, n_windows=2)


# --- conformal quantiles ------------------------------------------------------------


def test_conformal_quantiles_by_hand() -> None:
    point = np.array([10.0, 20.0])
    scores = np.array([[1.0, 2.0], [3.0, 4.0]])
    # paths per step: {7, 9, 11, 13} and {16, 18, 22, 24}; linear interpolation
    out = conformal_quantiles(point, scores, (0.0, 0.25, 0.5, 0.75, 1.0))
    np.testing.assert_allclose(out[0.0], [7.0, 16.0])
    np.testing.assert_allclose(out[0.25], [8.5, 17.5])
    np.testing.assert_allclose(out[0.5], [10.0, 20.0])
    np.testing.assert_allclose(out[0.75], [11.5, 22.5])
    np.testing.assert_allclose(out[1.0], [13.0, 24.0])


def test_conformal_quantiles_are_monotone_and_symmetric() -> None:
    rng = np.random.default_rng(3)
    point = rng.normal(50.0, 10.0, 6)
    scores = np.abs(rng.normal(0.0, 5.0, (4, 6)))
    levels = np.linspace(0.01, 0.99, 25)
    out = conformal_quantiles(point, scores, levels)
    matrix = np.vstack([out[q] for q in levels])
    assert np.all(np.diff(matrix, axis=0) >= 0)
    mirror = conformal_quantiles(point, scores, 1.0 - levels)
    for q, q_mirror in zip(levels, 1.0 - levels, strict=True):
        np.testing.assert_allclose(out[q] - point, point - mirror[q_mirror], atol=1e-9)
    np.testing.assert_allclose(conformal_quantiles(point, scores, [0.5])[0.5], point)


def test_zero_scores_collapse_on_the_point() -> None:
    point = np.array([1.0, 2.0, 3.0])
    out = conformal_quantiles(point, np.zeros((2, 3)), (0.1, 0.9))
    np.testing.assert_array_equal(out[0.1], point)
    np.testing.assert_array_equal(out[0.9], point)


# --- predict_with_quantiles ---------------------------------------------------------


def test_non_native_model_gets_every_quantile_with_median_equal_point() -> None:
    y = _squares(10)
    forecast = predict_with_quantiles(LastValue(), y, h=2, quantiles=QUANTILES, conformal_windows=2)
    np.testing.assert_array_equal(forecast.point, [81.0, 81.0])
    assert set(forecast.quantiles) == set(QUANTILES)
    np.testing.assert_array_equal(forecast.quantiles[0.5], forecast.point)
    assert forecast.quantiles[0.5] is not forecast.point
    expected = conformal_quantiles(
        forecast.point, np.array([[11.0, 24.0], [15.0, 32.0]]), QUANTILES
    )
    for q in QUANTILES:
        if q != 0.5:
            np.testing.assert_allclose(forecast.quantiles[q], expected[q])
    matrix = np.vstack([forecast.quantiles[q] for q in QUANTILES])
    assert np.all(np.diff(matrix, axis=0) >= 0)


def test_native_quantiles_are_kept_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_conformal(*args: Any, **kwargs: Any) -> np.ndarray:
        raise AssertionError("conformal scores computed for a model with every native quantile")

    monkeypatch.setattr(conformal, "conformity_scores", no_conformal)
    y = np.array([1.0, 2.0, 4.0])
    forecast = predict_with_quantiles(
        NativeBand(), y, h=3, quantiles=(0.1, 0.5, 0.9), conformal_windows=2
    )
    np.testing.assert_array_equal(forecast.quantiles[0.1], [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(forecast.quantiles[0.5], [4.0, 4.0, 4.0])
    np.testing.assert_array_equal(forecast.quantiles[0.9], [8.0, 8.0, 8.0])


def test_only_missing_quantiles_are_added_conformally() -> None:
    y = _squares(10)
    forecast = predict_with_quantiles(
        NativeBand(known=(0.1, 0.9)), y, h=2, quantiles=(0.1, 0.25, 0.5, 0.9), conformal_windows=2
    )
    np.testing.assert_array_equal(forecast.quantiles[0.1], [77.0, 77.0])
    np.testing.assert_array_equal(forecast.quantiles[0.9], [85.0, 85.0])
    np.testing.assert_array_equal(forecast.quantiles[0.5], forecast.point)
    expected = conformal_quantiles(forecast.point, np.array([[11.0, 24.0], [15.0, 32.0]]), [0.25])
    np.testing.assert_allclose(forecast.quantiles[0.25], expected[0.25])


def test_builtin_native_model_keeps_its_own_quantiles() -> None:
    y = np.sin(np.arange(30)) + 10
    forecast = predict_with_quantiles(Naive(), y, 4, (0.1, 0.5, 0.9), 2)
    own = Naive().fit(y).predict(4, (0.1, 0.5, 0.9))
    for q in (0.1, 0.5, 0.9):
        np.testing.assert_array_equal(forecast.quantiles[q], own.quantiles[q])


def test_builtin_window_model_gets_quantiles_from_the_windows_it_can_fit() -> None:
    # WindowAverage needs 13 points; on 20 with h=4 only one calibration cutoff (16) is possible
    y = np.arange(20, dtype=np.float64)
    forecast = predict_with_quantiles(WindowAverage(), y, 4, (0.1, 0.5, 0.9), 2)
    np.testing.assert_allclose(forecast.point, np.full(4, 13.0))  # mean of 7..19
    # the cutoff at 16 predicts mean(3..15) = 9 for actuals 16..19
    expected = conformal_quantiles(forecast.point, np.array([[7.0, 8.0, 9.0, 10.0]]), (0.1, 0.9))
    np.testing.assert_allclose(forecast.quantiles[0.1], expected[0.1])
    np.testing.assert_allclose(forecast.quantiles[0.9], expected[0.9])
    np.testing.assert_array_equal(forecast.quantiles[0.5], forecast.point)


def test_too_short_for_the_model_raises() -> None:
    with pytest.raises(HistoryTooShortError):
        predict_with_quantiles(NeedsFive(), _squares(4), 2, QUANTILES, 2)


def test_too_short_for_calibration_raises() -> None:
    # enough to fit (3 >= 1) but not for one calibration window of h=3
    with pytest.raises(HistoryTooShortError, match="conformal"):
        predict_with_quantiles(LastValue(), _squares(3), 3, QUANTILES, 2)
