"""Quantiles for models without native ones: split-conformal from rolling refits.

For a series ``y`` and horizon ``h`` the model is refitted at ``n_windows``
earlier cutoffs (each ``h`` apart, the last one ``h`` before the end); the
absolute errors per horizon step are the conformity scores, and the quantile
forecasts are the quantiles of ``point +/- score`` (statsforecast's
"conformal_distribution" method, so intervals widen with the horizon).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from forecasting.models.base import (
    Forecast,
    ForecastModel,
    HistoryTooShortError,
    model_season_length,
)


def conformity_scores(model: ForecastModel, y: np.ndarray, h: int, n_windows: int) -> np.ndarray:
    """Absolute errors of refits at earlier cutoffs, shape (windows, h).

    Only cutoffs that leave the model its declared minimum history are used.
    """
    needed = max(1, model.min_history(model_season_length(model)))
    usable = min(n_windows, (y.size - needed) // h)
    if usable < 1:
        raise HistoryTooShortError(
            f"conformal quantiles for {type(model).__name__} need at least {needed + h} "
            f"observations, got {y.size}"
        )
    scores = np.empty((usable, h))
    for window in range(usable):
        train_end = y.size - (usable - window) * h
        refit = model.clone().fit(y[:train_end])
        scores[window] = np.abs(refit.predict(h).point - y[train_end : train_end + h])
    return scores


def conformal_quantiles(point: np.ndarray, scores: np.ndarray, quantiles: Sequence[float]) -> dict[float, np.ndarray]:
    """Quantiles of the symmetric error distribution around ``point``."""
    paths = np.vstack([point - scores, point + scores])
    return {q: np.quantile(paths, q, axis=0) for q in quantiles}


def predict_with_quantiles(
    model: ForecastModel, y: np.ndarray, h: int, quantiles: Sequence[float], conformal_windows: int
) -> Forecast:
    """Fit ``model`` on ``y`` and forecast ``h`` steps with every quantile.

    Native quantiles come from the model; the others are conformal. The median
    of a conformal forecast is the point forecast itself.
    """
    fitted = model.fit(y)
    forecast = fitted.predict(h, quantiles)
    missing = [q for q in quantiles if q not in forecast.quantiles]
    if missing:
        scores = conformity_scores(model, y, h, conformal_windows)
        forecast.quantiles.update(conformal_quantiles(forecast.point, scores, missing))
        if 0.5 in missing:
            forecast.quantiles[0.5] = forecast.point.copy()
    return forecast
