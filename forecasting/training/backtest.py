"""Raw forecasts of one candidate on one series: at every backtest origin and for the future.

A candidate is fitted at the earliest backtest cutoff and moved forward to the later
ones with ``ForecastModel.forward`` (no re-estimation) when the plan says so; otherwise
it is refitted at every cutoff. The forecast of the future is always a fresh fit on the
whole (capped) history. A forward forecast that is not finite or explodes is replaced by
a refit at that cutoff, so a model whose states diverge on a new history costs time, not
accuracy. Raw means uncalibrated: models without native quantiles give their median
only (NaN for the other quantiles); ``evaluation.calibration`` turns every raw forecast
into calibrated quantiles.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from forecasting.models.base import Forecast, ForecastModel, HistoryTooShortError
from forecasting.training.time_limit import FitTimeoutError, time_limit

QuantileForecast = dict[float, np.ndarray]
EXPLOSION_FACTOR = 10.0  # a forward forecast beyond this x max |history| is refitted instead


def raw_quantiles(model: ForecastModel, quantiles: Sequence[float]) -> tuple[float, ...]:
    """The quantiles a model is asked for: all of them if native, none otherwise (its point is the median)."""
    return tuple(quantiles) if model.get_tag("native_quantiles") else ()


def _as_quantiles(model: ForecastModel, forecast: Forecast, quantiles: Sequence[float], horizon: int) -> QuantileForecast:
    """Every quantile of ``quantiles``: native values, the point as the median, NaN for the rest."""
    out = {}
    for q in quantiles:
        if q in forecast.quantiles:
            out[q] = np.asarray(forecast.quantiles[q], dtype=np.float64)
        elif abs(q - 0.5) < 1e-12:
            out[q] = np.asarray(forecast.point, dtype=np.float64)
        else:
            out[q] = np.full(horizon, np.nan)
        if out[q].shape != (horizon,):
            raise ValueError(f"{type(model).__name__} returned quantile {q} of shape {out[q].shape} for horizon {horizon}")
    return out


def _sane(forecast: QuantileForecast, history: np.ndarray) -> bool:
    """Finite where given (NaN marks a quantile the model does not make) and not exploding."""
    values = np.vstack(list(forecast.values()))
    given = values[~np.isnan(values)]
    ceiling = EXPLOSION_FACTOR * float(np.max(np.abs(history))) if history.size else np.inf
    return bool(given.size and np.all(np.isfinite(given)) and np.max(np.abs(given)) <= ceiling)


def finite(forecast: QuantileForecast, wanted: Sequence[float]) -> bool:
    """The median and every quantile in ``wanted`` are finite (NaN only marks a quantile a model does not make)."""
    return all(np.all(np.isfinite(values)) for q, values in forecast.items() if q in wanted or abs(q - 0.5) < 1e-12)


def candidate_forecasts(
    model: ForecastModel,
    y: np.ndarray,
    train_ends: Sequence[int],
    horizon: int,
    quantiles: Sequence[float],
    history_cap: int | None = None,
    move_forward: bool = True,
    fit_time_limit: float = 60.0,
    label: str = "",
    future: bool = True,
) -> tuple[dict[int, QuantileForecast], dict[int, str]]:
    """Raw forecasts keyed by history length: each of ``train_ends`` (oldest first), then ``y.size`` if ``future``.

    Returns ``(forecasts, failures)``; a length with a failure (too short, an error, a
    non-finite forecast, the time limit) is missing from ``forecasts`` and named in
    ``failures``. The time limit covers the whole candidate on this series.
    """
    wanted = raw_quantiles(model, quantiles)
    name = label or type(model).__name__
    forecasts: dict[int, QuantileForecast] = {}
    failures: dict[int, str] = {}

    def window(end: int) -> np.ndarray:
        return y[max(0, end - history_cap) : end] if history_cap else y[:end]

    def refit(end: int) -> QuantileForecast:
        return _as_quantiles(model, model.clone().fit(window(end)).predict(horizon, wanted), quantiles, horizon)

    ends = [*train_ends, y.size] if future else list(train_ends)
    try:
        with time_limit(fit_time_limit, f"{name} on {len(ends)} origins"):
            fitted: ForecastModel | None = None
            for end in ends:
                try:
                    if end == y.size or not move_forward:
                        forecast = refit(end)
                    elif fitted is None:
                        fitted = model.clone().fit(window(end))
                        forecast = _as_quantiles(model, fitted.predict(horizon, wanted), quantiles, horizon)
                    else:
                        moved = _as_quantiles(model, fitted.forward(window(end), horizon, wanted), quantiles, horizon)
                        forecast = moved if _sane(moved, window(end)) else refit(end)
                    if not finite(forecast, wanted):
                        raise ValueError("non-finite forecast")
                    forecasts[end] = forecast
                except HistoryTooShortError as exc:
                    failures[end] = f"too_short: {exc}"
                except FitTimeoutError:
                    raise  # the limit covers the whole candidate: the origins left fail with it
                except Exception as exc:  # one origin's failure costs this candidate that origin only
                    failures[end] = f"{type(exc).__name__}: {exc}"[:300]
    except FitTimeoutError as exc:
        for end in ends:
            if end not in forecasts and end not in failures:
                failures[end] = f"{type(exc).__name__}: {exc}"[:300]
    return forecasts, failures
