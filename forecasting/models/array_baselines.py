"""Cheap baselines for many series and origins at once, with array operations.

Naive, SeasonalNaive, HistoricAverage and WindowAverage forecast from a few statistics of
the history (its last value or season, its mean, its residuals' standard deviation). One
statsforecast object per series and backtest origin costs far more than that arithmetic,
so here every (series, origin) pair of a batch is one row of a matrix of histories,
right-aligned and padded with NaN on the left, and each statistic is one reduction over
the rows. The formulas are statsforecast's own (``statsforecast.models``: ``fit`` and
``predict`` of each class, native intervals from ``_calculate_intervals``), so the
forecasts equal those of the per-series adapters up to floating-point summation order
(a test compares both paths).

Only the built-in adapters of ``statsforecast_models`` with their own parameters are
handled; anything else (a plug-in, a subclass) goes through the per-series path.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from statsforecast.utils import _quantiles

from forecasting.models.base import ForecastModel
from forecasting.models.statsforecast_models import (
    HistoricAverage,
    Naive,
    SeasonalNaive,
    WindowAverage,
    interval_level,
)

ArrayForecast = dict[float, np.ndarray]  # quantile -> (rows, h)
MAX_CELLS = 4_000_000  # histories matrix cells per chunk (32 MB of float64)
_KINDS: dict[type, str] = {Naive: "naive", SeasonalNaive: "seasonal_naive", HistoricAverage: "historic_average",
                           WindowAverage: "window_average"}


def supports(model: ForecastModel) -> bool:
    """Whether ``model`` has an array implementation here (exactly one of the built-in baselines)."""
    return type(model) in _KINDS


def _z(q: float) -> float:
    """The normal quantile statsforecast multiplies sigma by for the interval whose bound is ``q``."""
    return float(_quantiles(np.asarray([interval_level(q)]))[0])


def _histories(flat: np.ndarray, starts: np.ndarray, ends: np.ndarray, width: int) -> np.ndarray:
    """Row k: the series at ``flat[starts[k]:]`` cut at ``ends[k]``, its last ``width`` values right-aligned, NaN to the left."""
    offsets = ends[:, None] - width + np.arange(width)[None, :]  # positions in the series
    valid = offsets >= 0
    taken = flat[np.where(valid, starts[:, None] + offsets, 0)]
    return np.where(valid, taken, np.nan)


def _sigma(residuals: np.ndarray, dof: np.ndarray) -> np.ndarray:
    """statsforecast's ``_calculate_sigma``: sqrt(nansum(residuals ** 2) / dof), 0 where dof < 1."""
    total = np.nansum(residuals**2, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(dof > 0, np.sqrt(total / np.where(dof > 0, dof, 1)), 0.0)


def _point_and_sigmah(kind: str, model: ForecastModel, hist: np.ndarray, ends: np.ndarray, h: int,
                      intervals: bool) -> tuple[np.ndarray, np.ndarray | None]:
    n = ends.astype(np.float64)
    if kind == "naive":
        point = np.repeat(hist[:, -1:], h, axis=1)
        if not intervals:
            return point, None
        sigma = _sigma(np.diff(hist, axis=1), ends - 1)
        return point, sigma[:, None] * np.sqrt(np.arange(1, h + 1))[None, :]
    if kind == "seasonal_naive":
        m = int(model.season_length)
        season = hist[:, -m:]
        point = np.tile(season, (1, -(-h // m)))[:, :h]
        if not intervals:
            return point, None
        sigma = _sigma(hist[:, m:] - hist[:, :-m], ends - m)
        k = np.floor(np.arange(h) / m)
        return point, sigma[:, None] * np.sqrt(k + 1)[None, :]
    if kind == "historic_average":
        mean = np.nanmean(hist, axis=1)
        point = np.repeat(mean[:, None], h, axis=1)
        if not intervals:
            return point, None
        sigma = _sigma(hist - mean[:, None], ends - 1)
        return point, np.repeat((sigma * np.sqrt(1 + (1 / n)))[:, None], h, axis=1)
    if kind == "window_average":
        window = int(model.window_size)
        point = np.repeat(np.mean(hist[:, -window:], axis=1)[:, None], h, axis=1)
        return point, None  # conformal-only in statsforecast: no native intervals
    raise ValueError(f"no array implementation of {type(model).__name__}")


def _width(kind: str, model: ForecastModel, ends: np.ndarray) -> int:
    """Columns of the histories matrix a kind needs: only the recent values where that suffices."""
    longest = int(ends.max()) if ends.size else 1
    if kind == "window_average":
        return max(1, min(longest, int(model.window_size)))
    return max(1, longest)


def batch_forecasts(
    model: ForecastModel,
    ys: Sequence[np.ndarray],
    pairs: Sequence[tuple[int, int]],
    horizon: int,
    quantiles: Sequence[float],
) -> ArrayForecast:
    """Forecasts of ``model`` fitted on ``ys[i][:end]`` for every ``(i, end)`` of ``pairs``.

    Returns, per quantile of ``quantiles`` (the native ones of the model; its point is the
    median), an array of shape ``(len(pairs), horizon)``. The caller checks the model's
    minimum history: every ``end`` here must satisfy it.
    """
    kind = _KINDS.get(type(model))
    if kind is None:
        raise ValueError(f"no array implementation of {type(model).__name__}")
    wanted = [q for q in quantiles if abs(q - 0.5) > 1e-12]
    intervals = bool(wanted) and bool(model.get_tag("native_quantiles"))
    rows = np.array([i for i, _ in pairs], dtype=np.int64)
    ends = np.array([end for _, end in pairs], dtype=np.int64)
    flat = np.concatenate([np.asarray(y, dtype=np.float64) for y in ys]) if len(ys) else np.empty(0)
    series_starts = np.r_[0, np.cumsum([np.size(y) for y in ys])[:-1]].astype(np.int64) if len(ys) else np.empty(0, np.int64)
    out: ArrayForecast = {q: np.empty((rows.size, horizon)) for q in quantiles}
    width = _width(kind, model, ends)
    chunk = max(1, MAX_CELLS // width)
    for start in range(0, rows.size, chunk):
        part = slice(start, start + chunk)
        hist = _histories(flat, series_starts[rows[part]], ends[part], width)
        point, sigmah = _point_and_sigmah(kind, model, hist, ends[part], horizon, intervals)
        for q in quantiles:
            if abs(q - 0.5) < 1e-12:
                out[q][part] = point
            elif sigmah is None:
                out[q][part] = np.nan
            elif q < 0.5:
                out[q][part] = point - _z(q) * sigmah
            else:
                out[q][part] = point + _z(q) * sigmah
    return out
