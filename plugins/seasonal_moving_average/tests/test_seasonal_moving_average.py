"""The seasonal moving average: the platform's conformance kit, and forecasts computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
from seasonal_moving_average import SeasonalMovingAverage

from forecasting.activation.conformance import parametrize_with_checks


@parametrize_with_checks([SeasonalMovingAverage])
def test_conformance(model_class, check):
    check(model_class)


# Two seasons of 4: the same period averages (1+5)/2, (2+6)/2, (3+7)/2, (4+8)/2 = 3, 4, 5, 6.
Y = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])


def test_pure_seasonal_average_of_the_same_period():
    model = SeasonalMovingAverage(season_length=4, n_seasons=2, window=2, weight=1.0).fit(Y)
    np.testing.assert_allclose(model.predict(6).point, [3.0, 4.0, 5.0, 6.0, 3.0, 4.0])


def test_pure_moving_average_is_flat():
    model = SeasonalMovingAverage(season_length=4, n_seasons=2, window=2, weight=0.0).fit(Y)
    np.testing.assert_allclose(model.predict(3).point, [7.5, 7.5, 7.5])  # mean of 7 and 8


def test_blend_and_fewer_seasons_than_asked():
    # only two seasons exist, so n_seasons=5 uses both; 0.25 x seasonal + 0.75 x mean of the last 4 (6.5)
    model = SeasonalMovingAverage(season_length=4, n_seasons=5, window=4, weight=0.25).fit(Y)
    np.testing.assert_allclose(model.predict(4).point, 0.25 * np.array([3.0, 4.0, 5.0, 6.0]) + 0.75 * 6.5)


def test_bad_parameters_fail_at_fit_not_in_the_constructor():
    model = SeasonalMovingAverage(season_length=4, weight=2.0)  # the constructor only stores
    with pytest.raises(ValueError, match="weight"):
        model.fit(Y)
