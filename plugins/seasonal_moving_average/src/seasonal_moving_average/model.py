"""The average of the same period over the last seasons, blended with a recent moving average.

For weekly demand: the forecast for a week is ``weight`` x (the mean of that calendar
week in the last ``n_seasons`` years) + (1 - ``weight``) x (the mean of the last
``window`` weeks). Point forecast only: the platform adds calibrated (conformal)
quantiles from backtest errors.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from forecasting.models.base import Forecast, ForecastModel


class SeasonalMovingAverage(ForecastModel):
    """Same period of the last ``n_seasons`` seasons, blended with the last ``window`` values."""

    owner = "Demand Planning Analytics (example team)"
    tags = {
        "native_quantiles": False,  # the platform supplies conformal quantiles
        "min_history_seasons": 1.0,  # one full season to know each period's value
        "demand_types": ("smooth", "intermittent"),
    }

    def __init__(self, season_length: int = 52, n_seasons: int = 3, window: int = 8, weight: float = 0.5) -> None:
        self.season_length = season_length
        self.n_seasons = n_seasons
        self.window = window
        self.weight = weight

    def _fit(self, y: np.ndarray, X: np.ndarray | None) -> None:
        if self.n_seasons < 1 or self.window < 1 or not 0.0 <= self.weight <= 1.0:
            raise ValueError(
                f"need n_seasons >= 1, window >= 1 and 0 <= weight <= 1; got {self.n_seasons}, {self.window}, {self.weight}"
            )
        m = int(self.season_length)
        seasons = min(int(self.n_seasons), y.size // m)
        # profile_[j]: the mean of the period j steps into the last season, over the last `seasons` seasons
        self.profile_ = y[y.size - seasons * m :].reshape(seasons, m).mean(axis=0)
        self.level_ = float(y[-int(self.window) :].mean())

    def _predict(self, h: int, quantiles: tuple[float, ...], X_future: np.ndarray | None) -> Forecast:
        seasonal = self.profile_[np.arange(h) % self.profile_.size]
        return Forecast(point=self.weight * seasonal + (1.0 - self.weight) * self.level_)

    @classmethod
    def get_test_params(cls) -> list[dict[str, Any]]:
        return [{"n_seasons": 2, "window": 4, "weight": 0.5}, {"n_seasons": 1, "window": 1, "weight": 1.0}]
