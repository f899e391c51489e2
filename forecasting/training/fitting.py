"""Fit one candidate on one history and forecast every quantile, under the wall-clock limit.

The single place a candidate is fitted: the in-process path (built-ins) and the
isolated child process (plug-ins) both call ``forecast_quantiles``. It imports
only numpy and the model layer, so a child process starts quickly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from forecasting.models.base import ForecastModel, ModelError
from forecasting.models.conformal import predict_with_quantiles
from forecasting.training.time_limit import time_limit

QuantileForecast = dict[float, np.ndarray]


def forecast_quantiles(
    model: ForecastModel,
    y: np.ndarray,
    horizon: int,
    quantiles: Sequence[float],
    conformal_windows: int,
    fit_time_limit: float,
    history_cap: int | None = None,
    label: str = "",
) -> QuantileForecast:
    """Fit a clone of ``model`` on ``y`` (its last ``history_cap`` values if given) and forecast."""
    history = y[-history_cap:] if history_cap else y
    with time_limit(fit_time_limit, f"{label or type(model).__name__} fit"):
        forecast = predict_with_quantiles(model.clone(), history, horizon, quantiles, conformal_windows)
    out = {q: np.asarray(forecast.quantiles[q], dtype=np.float64) for q in quantiles}
    for q, values in out.items():
        if values.shape != (horizon,):
            raise ModelError(f"{type(model).__name__} returned quantile {q} of shape {values.shape} for horizon {horizon}")
    return out
