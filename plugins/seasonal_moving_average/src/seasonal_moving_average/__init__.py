"""Seasonal moving average, a forecasting plug-in (entry point ``SeasonalMovingAverage``)."""

from seasonal_moving_average.model import SeasonalMovingAverage

__all__ = ["SeasonalMovingAverage"]
