"""Fit one candidate on one history and forecast, under the wall-clock limit.

``raw_forecast`` is what training uses everywhere (in-process and in the isolated child
of a plug-in): native quantiles, or only the median for a model without them, left to
``evaluation.calibration``. ``forecast_quantiles`` also fills in conformal quantiles from
refits of the same series, for callers that need every quantile from one history. Both
import only numpy and the model layer, so a child process starts quickly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from forecasting.models.base import ForecastModel, ModelError
from forecasting.models.conformal import predict_with_quantiles
from forecasting.training.time_limit import time_limit

QuantileForecast = dict[float, np.ndarray]


def raw_forecast(
    model: ForecastModel,
    y: np.ndarray,
    horizon: int,
    quantiles: Sequence[float],
    fit_time_limit: float,
    history_cap: int | None = None,
    label: str = "",
) -> QuantileForecast:
    """Fit a clone on ``y`` (its last ``history_cap`` values if given); every quantile, NaN where not native.

    The median is always there (the point forecast when the model has no native quantiles).
    """
    history = y[-history_cap:] if history_cap else y
    native = bool(model.get_tag("native_quantiles"))
    with time_limit(fit_time_limit, f"{label or type(model).__name__} fit"):
        forecast = model.clone().fit(history).predict(horizon, quantiles if native else ())
    out = {}
    for q in quantiles:
        if native and q in forecast.quantiles:
            out[q] = np.asarray(forecast.quantiles[q], dtype=np.float64)
        elif abs(q - 0.5) < 1e-12:
            out[q] = np.asarray(forecast.quantiles.get(q, forecast.point), dtype=np.float64)
        else:
            out[q] = np.full(horizon, np.nan)
    for q, values in out.items():
        if values.shape != (horizon,):
            raise ModelError(f"{type(model).__name__} returned quantile {q} of shape {values.shape} for horizon {horizon}")
    return out


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
