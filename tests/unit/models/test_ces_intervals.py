"""AutoCES's closed-form intervals equal statsforecast's simulated ones up to their Monte Carlo noise.

statsforecast simulates 5,000 paths per forecast; the adapter computes the same normal
distribution exactly. The medians must be identical and every bound within the
simulation's noise (its standard error at 5,000 paths is about 1.5 % of the half-width;
the tolerance allows four of them), at a fresh fit and after ``forward``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from statsforecast.models import AutoCES as BareAutoCES

from forecasting.data.demo import generate_demo_panel
from forecasting.models import ces_intervals
from forecasting.models.statsforecast_models import AutoCES

QUANTILES = (0.05, 0.1, 0.5, 0.9, 0.95)
SEASON = 52
HORIZON = 13
TOLERANCE = 0.06  # share of the simulated half-width


def _histories() -> list[np.ndarray]:
    panel = generate_demo_panel(n_series=12, n_periods=156, seed=11)
    return [group["y"].to_numpy(dtype=float) for _, group in panel.groupby("unique_id")]


def _assert_close(platform, bare: dict[str, np.ndarray]) -> None:
    np.testing.assert_allclose(platform.point, bare["mean"], rtol=1e-10, atol=1e-10)
    for q, level, side in ((0.05, 90, "lo"), (0.1, 80, "lo"), (0.9, 80, "hi"), (0.95, 90, "hi")):
        half_width = np.abs(bare[f"{side}-{level}"] - bare["mean"])
        gap = np.abs(platform.quantiles[q] - bare[f"{side}-{level}"])
        assert np.all(gap <= TOLERANCE * half_width + 1e-9), (q, (gap / np.maximum(half_width, 1e-12)).max())


@pytest.mark.parametrize("length", [78, 117, 156])
def test_a_fresh_fit_matches_the_simulated_intervals(length: int) -> None:
    warnings.simplefilter("ignore")
    for y in _histories():
        platform = AutoCES(season_length=SEASON).fit(y[:length]).predict(HORIZON, QUANTILES)
        bare = BareAutoCES(season_length=SEASON).fit(y[:length]).predict(HORIZON, level=[80, 90])
        _assert_close(platform, bare)


def test_a_forward_matches_the_simulated_intervals() -> None:
    warnings.simplefilter("ignore")
    for y in _histories():
        platform = AutoCES(season_length=SEASON).fit(y[:117]).forward(y[:143], HORIZON, QUANTILES)
        bare = BareAutoCES(season_length=SEASON).fit(y[:117]).forward(y=y[:143], h=HORIZON, level=[80, 90])
        _assert_close(platform, bare)


def test_a_constant_history_keeps_statsforecast_s_own_path() -> None:
    """statsforecast fits a Naive to a constant series: no CES states, no closed form, same answer."""
    y = np.full(120, 4.0)
    platform = AutoCES(season_length=SEASON).fit(y).predict(HORIZON, QUANTILES)
    bare = BareAutoCES(season_length=SEASON).fit(y).predict(HORIZON, level=[80, 90])
    np.testing.assert_allclose(platform.point, bare["mean"])
    np.testing.assert_allclose(platform.quantiles[0.1], bare["lo-80"])


def test_the_spread_grows_with_sigma_and_is_zero_without_noise() -> None:
    y = _histories()[0]
    fitted = dict(BareAutoCES(season_length=SEASON).fit(y).model_)
    sd = ces_intervals.forecast_sd(fitted, HORIZON)
    assert np.all(sd > 0)
    np.testing.assert_allclose(ces_intervals.forecast_sd({**fitted, "sigma2": 4 * fitted["sigma2"]}, HORIZON), 2 * sd)
    assert np.all(ces_intervals.forecast_sd({**fitted, "sigma2": 0.0}, HORIZON) == 0)
    assert not ces_intervals.applies({**fitted, "distribution": "t"})
