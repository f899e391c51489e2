"""Calibrated quantiles from backtest residuals: pooled split-conformal with a finite-sample correction.

Every candidate's raw forecast (native quantiles, or only a median) is calibrated the
same way (normalised conformal prediction). For each quantile level ``q`` and horizon
step, the score of a backtest row is ``(y - raw_q) / spread``, where ``raw_q`` is the raw
quantile (the median for models without native quantiles) and ``spread`` the forecast's
own error scale (``error_scale``): the standard deviation its native interval implies,
or, for a model without one, the series' scale at that origin (the MASE denominator).
Dividing by it makes the scores of different series comparable, so they can be pooled.
The calibrated quantile is ``raw_q + spread * offset_q``, with ``offset_q`` the
conservative empirical ``q``-quantile of the scores pooled over the series of a pool (a
shard's demand class) and the backtest windows: the ``ceil((n + 1) q)``-th smallest
score above the median, the ``floor((n + 1) q)``-th below it (split-conformal's
finite-sample correction). The median itself is not moved: a model's own median is its
point forecast.

One series has too few residuals for a tail quantile, so scores are pooled per horizon
step across series; when a step's pool is smaller than ``min_scores`` it borrows the
neighbouring steps. With no score at all the raw quantiles are kept (offset 0).

Series of one pool differ in how predictable they are, and a large, stable series would
get the wide offsets its noisy neighbours need. So a large enough pool is cut into bins
of relative volatility (the series' scale over its mean absolute level, at each origin)
and calibrated bin by bin (Mondrian conformal prediction): coverage holds within each bin,
hence overall, and each bin's offsets fit the series in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MIN_SCORES = 30  # scores a step's pool needs before it stops borrowing neighbouring steps
MIN_SPREAD_SHARE = 0.1  # a native error scale is floored at this share of the series' scale
MAX_BINS = 3  # relative-volatility bins of a pool (Mondrian calibration) ...
MIN_ROWS_PER_BIN = 40  # ... each with at least this many backtest rows (series x windows)


def conformal_quantile(scores: np.ndarray, q: float) -> float:
    """Conservative empirical ``q``-quantile of ``scores`` (split-conformal order statistic)."""
    values = np.sort(scores[np.isfinite(scores)])
    n = values.size
    if n == 0:
        return 0.0
    if q > 0.5:
        rank = min(int(np.ceil((n + 1) * q)), n)
    elif q < 0.5:
        rank = max(int(np.floor((n + 1) * q)), 1)
    else:
        return float(np.median(values))
    return float(values[rank - 1])


@dataclass(frozen=True)
class Calibrator:
    """Offsets (in spread units) per horizon step and quantile, and the scores each step used."""

    quantiles: tuple[float, ...]
    offsets: np.ndarray  # (horizon, n_quantiles)
    n_scores: np.ndarray  # (horizon,) scores behind each step's offsets

    @classmethod
    def identity(cls, quantiles: Sequence[float], horizon: int) -> Calibrator:
        return cls(tuple(quantiles), np.zeros((horizon, len(quantiles))), np.zeros(horizon, dtype=np.int64))

    def apply(self, raw: np.ndarray, spread: np.ndarray) -> np.ndarray:
        """Calibrated quantiles of raw forecasts ``(rows, horizon, n_quantiles)`` with ``spread`` (rows, horizon)."""
        return raw + spread[:, :, None] * self.offsets[None, :, :]

    def for_horizon(self, horizon: int) -> Calibrator:
        """The offsets of the first ``horizon`` steps; steps beyond the calibrated ones take the last step's."""
        steps = np.minimum(np.arange(horizon), self.offsets.shape[0] - 1)
        return Calibrator(self.quantiles, self.offsets[steps], self.n_scores[steps])


def error_scale(raw: np.ndarray, quantiles: Sequence[float], scale: np.ndarray) -> np.ndarray:
    """Per row and step, the error scale a calibration divides by: (rows, horizon).

    With native quantiles: the standard deviation a normal distribution would need for the
    outermost pair of raw quantiles, floored at ``MIN_SPREAD_SHARE`` of ``scale`` (rows,);
    without them (only a median): ``scale`` itself.
    """
    quantiles = list(quantiles)
    fallback = np.broadcast_to(scale[:, None], raw.shape[:2])
    if len(quantiles) < 2:
        return fallback.copy()
    from statistics import NormalDist

    z = NormalDist().inv_cdf
    width = (raw[:, :, -1] - raw[:, :, 0]) / (z(quantiles[-1]) - z(quantiles[0]))
    native = np.isfinite(width) & (width >= 0)
    floored = np.maximum(width, MIN_SPREAD_SHARE * fallback)
    return np.where(native, floored, fallback)


def fit_calibrator(
    raw: np.ndarray,
    actual: np.ndarray,
    spread: np.ndarray,
    quantiles: Sequence[float],
    min_scores: int = MIN_SCORES,
) -> Calibrator:
    """Offsets from backtest rows: ``raw`` (rows, horizon, n_quantiles), ``actual`` and ``spread`` (rows, horizon).

    Rows with any non-finite value are left out. The median's offset is 0.
    """
    quantiles = tuple(quantiles)
    horizon = raw.shape[1]
    if raw.shape[0] == 0:
        return Calibrator.identity(quantiles, horizon)
    scores = (actual[:, :, None] - raw) / spread[:, :, None]
    usable = np.isfinite(scores).all(axis=2)  # (rows, horizon)
    offsets = np.zeros((horizon, len(quantiles)))
    counts = np.zeros(horizon, dtype=np.int64)
    for step in range(horizon):
        pool = _step_pool(scores, usable, step, min_scores)
        counts[step] = pool.shape[0]
        for j, q in enumerate(quantiles):
            offsets[step, j] = 0.0 if abs(q - 0.5) < 1e-12 else conformal_quantile(pool[:, j], q)
    return Calibrator(quantiles, offsets, counts)


def _step_pool(scores: np.ndarray, usable: np.ndarray, step: int, min_scores: int) -> np.ndarray:
    """A step's scores, widened symmetrically to neighbouring steps until ``min_scores`` are in."""
    horizon = scores.shape[1]
    width = 0
    while True:
        low, high = max(0, step - width), min(horizon, step + width + 1)
        pool = scores[:, low:high][usable[:, low:high]]
        if pool.shape[0] >= min_scores or (low == 0 and high == horizon):
            return pool
        width += 1


def coverage_by_step(calibrated: np.ndarray, actual: np.ndarray, lower: int, upper: int) -> tuple[np.ndarray, np.ndarray]:
    """Per horizon step: the share of ``actual`` inside [quantile ``lower``, quantile ``upper``] and the count.

    Rows where the forecast or the actual is missing are left out; a step without rows has NaN coverage.
    """
    valid = np.isfinite(actual) & np.isfinite(calibrated[:, :, lower]) & np.isfinite(calibrated[:, :, upper])
    with np.errstate(invalid="ignore"):
        inside = (actual >= calibrated[:, :, lower]) & (actual <= calibrated[:, :, upper]) & valid
    counts = valid.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, inside.sum(axis=0) / np.maximum(counts, 1), np.nan), counts


@dataclass(frozen=True)
class BinnedCalibrator:
    """One ``Calibrator`` per bin of relative volatility; ``edges`` are the inner bin boundaries."""

    edges: np.ndarray  # (bins - 1,)
    calibrators: tuple[Calibrator, ...]

    def bins(self, volatility: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.edges, np.nan_to_num(volatility, nan=0.0), side="left")

    def apply(self, raw: np.ndarray, spread: np.ndarray, volatility: np.ndarray) -> np.ndarray:
        """Calibrated quantiles of ``raw`` (rows, h, nq) with ``spread`` (rows, h) and ``volatility`` (rows,)."""
        out = np.empty_like(raw)
        which = self.bins(volatility)
        for b, calibrator in enumerate(self.calibrators):
            rows = which == b
            out[rows] = calibrator.apply(raw[rows], spread[rows])
        return out

    @classmethod
    def from_description(cls, description: Sequence[dict], quantiles: Sequence[float]) -> BinnedCalibrator:
        """The calibrator ``describe`` wrote (as read back from JSON)."""
        edges = np.array([float(b["volatility_to"]) for b in description[:-1]], dtype=np.float64)
        calibrators = tuple(Calibrator(tuple(quantiles), np.asarray(b["offsets"], dtype=np.float64),
                                       np.asarray(b["n_scores"], dtype=np.int64)) for b in description)
        return cls(edges, calibrators)

    def for_horizon(self, horizon: int) -> BinnedCalibrator:
        return BinnedCalibrator(self.edges, tuple(c.for_horizon(horizon) for c in self.calibrators))

    def describe(self) -> list[dict[str, object]]:
        """The bins as plain data: volatility range, scores per step and offsets (for the run folder)."""
        bounds = [-np.inf, *self.edges.tolist(), np.inf]
        return [
            {"bin": b, "volatility_from": bounds[b], "volatility_to": bounds[b + 1],
             "n_scores": c.n_scores.tolist(), "offsets": c.offsets.tolist()}
            for b, c in enumerate(self.calibrators)
        ]


def fit_binned_calibrator(
    raw: np.ndarray,
    actual: np.ndarray,
    spread: np.ndarray,
    volatility: np.ndarray,
    quantiles: Sequence[float],
    max_bins: int = MAX_BINS,
    min_rows_per_bin: int = MIN_ROWS_PER_BIN,
    min_scores: int = MIN_SCORES,
) -> BinnedCalibrator:
    """``fit_calibrator`` per bin of ``volatility`` (rows,): as many equal-count bins as the rows allow."""
    usable = np.isfinite(actual).any(axis=1) & np.isfinite(volatility)
    n_bins = int(max(1, min(max_bins, usable.sum() // max(1, min_rows_per_bin))))
    edges = np.quantile(volatility[usable], np.linspace(0, 1, n_bins + 1)[1:-1]) if n_bins > 1 else np.array([])
    if edges.size:  # tied volatilities make fewer bins, never an empty one
        edges = np.unique(edges[edges < volatility[usable].max()])
    which = np.searchsorted(edges, np.nan_to_num(volatility, nan=0.0), side="left")
    calibrators = tuple(
        fit_calibrator(raw[which == b], actual[which == b], spread[which == b], quantiles, min_scores)
        for b in range(edges.size + 1)
    )
    return BinnedCalibrator(np.asarray(edges, dtype=np.float64), calibrators)
