"""AutoCES prediction intervals in closed form: statsforecast's simulated intervals without the simulation.

statsforecast draws 5,000 normal perturbations of a fitted CES model's states and forecasts
from each (``ces._simulate_pred_intervals``): about 90 ms per forecast, ten times the fit.
A CES forecast is linear in its states, so the simulated paths are normal with a standard
deviation per horizon step of ``sigma * ||d forecast / d states||``; the gradient comes from
one forecast per state that the forecast reads (unit perturbations). The bounds equal the
simulated ones up to their Monte Carlo noise (about 1 % of the half-width), in a tenth of
the time. Only normal errors (AutoCES's default) have this form; other distributions keep
statsforecast's simulation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import norm
from statsforecast.ces import cesforecast, switch_ces


def applies(fitted: dict[str, Any]) -> bool:
    """Whether a fitted CES model (statsforecast's ``model_`` dict) has normal errors and states."""
    return fitted.get("distribution", "normal") == "normal" and "states" in fitted and "sigma2" in fitted


def _forecast(fitted: dict[str, Any], states: np.ndarray, h: int) -> np.ndarray:
    out = np.zeros(h, dtype=np.float64)
    season = switch_ces(fitted["seasontype"])
    cesforecast(states=states, n=fitted["n"], m=fitted["m"], season=season, h=h, f=out, **fitted["par"])
    return out


def forecast_sd(fitted: dict[str, Any], h: int) -> np.ndarray:
    """Standard deviation per horizon step of the forecast when every state gets N(0, sigma^2) noise."""
    states = np.asarray(fitted["states"], dtype=np.float64)
    base = _forecast(fitted, states, h)
    squared = np.zeros(h, dtype=np.float64)
    unit = np.zeros(states.size, dtype=np.float64)
    # Only the states at and after the last observation are read; scanning from the end
    # until a whole row changes nothing would rely on that layout, so every state is tried.
    for index in range(states.size):
        unit[index] = 1.0
        squared += (_forecast(fitted, states + unit.reshape(states.shape), h) - base) ** 2
        unit[index] = 0.0
    sigma2 = float(fitted["sigma2"])
    return np.sqrt(max(sigma2, 0.0) * squared)


def interval_bounds(fitted: dict[str, Any], mean: np.ndarray, levels: Sequence[float]) -> dict[str, np.ndarray]:
    """``lo-<level>`` and ``hi-<level>`` around ``mean`` (the model's forecast), named as statsforecast names them."""
    sd = forecast_sd(fitted, len(mean))
    bounds: dict[str, np.ndarray] = {}
    for level in levels:
        z = float(norm.ppf(0.5 + float(level) / 200.0))
        bounds[f"lo-{level}"] = mean - z * sd
        bounds[f"hi-{level}"] = mean + z * sd
    return bounds
