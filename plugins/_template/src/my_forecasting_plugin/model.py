"""TODO 5: say what the model does, for the people who will read the forecasts.

The contract (the platform checks all of it with `forecasting plugins check MyModel`):
- ``__init__`` stores its keyword arguments as attributes with the same names, and does nothing else
  (no validation, no data, no state: do those in ``_fit``);
- ``_fit(y, X)`` learns from ``y`` (a 1-D float array, finite, at least the declared minimum
  history long) and stores what it learned in attributes ending in ``_``; never modify ``y``;
- ``_predict(h, quantiles, X_future)`` returns a ``Forecast`` with ``h`` finite point values, and,
  only when ``tags["native_quantiles"]`` is True, one array of ``h`` values per requested quantile
  (non-crossing). Without native quantiles the platform adds calibrated ones from backtest errors;
- the same data and parameters always give the same forecast (use a ``seed`` parameter for any
  randomness); importing the module has no side effects (no threads, files, env, logging).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from forecasting.models.base import Forecast, ForecastModel


# TODO 6: rename the class (and the entry point in pyproject.toml to match).
class MyModel(ForecastModel):
    """TODO: one line; this placeholder forecasts the mean of the last ``window`` values."""

    # TODO 7: declare what the model can do. Leave out the tags whose defaults suit you:
    #   scope "local" (one series at a time) | native_quantiles False | exogenous False |
    #   min_history 1 (observations) | min_history_seasons 0.0 (seasons) |
    #   demand_types ("smooth", "intermittent") | expensive False (True: sees only recent seasons)
    tags = {
        "native_quantiles": False,
        "min_history": 1,
        "demand_types": ("smooth", "intermittent"),
    }

    # TODO 8: your parameters, each with a default. Take `season_length` if you need the season:
    #         the platform fills it from the run's settings.
    def __init__(self, window: int = 4) -> None:
        self.window = window

    # TODO 9: learn from y. Store fitted state in attributes that end with "_".
    def _fit(self, y: np.ndarray, X: np.ndarray | None) -> None:
        if self.window < 1:
            raise ValueError(f"window must be at least 1, got {self.window}")
        self.level_ = float(y[-self.window :].mean())

    # TODO 10: forecast h steps (and the quantiles, if you declared native_quantiles).
    def _predict(self, h: int, quantiles: tuple[float, ...], X_future: np.ndarray | None) -> Forecast:
        return Forecast(point=np.full(h, self.level_))

    # TODO 11: one or two cheap parameter sets; the conformance kit runs the model with each.
    @classmethod
    def get_test_params(cls) -> list[dict[str, Any]]:
        return [{"window": 2}, {"window": 1}]
