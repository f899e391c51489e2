"""The selection procedure of one pool of series, run forward-only over the backtest windows.

A pool is the series of a shard that share a demand class. Its raw forecasts are an
array ``raw`` of shape (candidates, series, slots, horizon, quantiles): slot 0 is the
future, slot ``k`` (1, 2, ...) the backtest window ``k - 1`` windows before the latest.

``fit_procedure(pool, available, target)`` learns everything from the windows in
``available`` only (calibrators per candidate, the pooled ensemble's weights, the
ensemble's own calibrator) and returns the calibrated forecasts of every candidate and
of the ensemble at ``target``. ``forward_evidence`` runs it for every backtest window
with only the windows whose actuals were known at that window's cutoff, so every score
of a window comes from choices made before it: the ensemble's members and weights and
every calibration are nested, forward-only. The future is forecast with every window.

``choose`` keeps the ensemble (the default) unless a single candidate beats it on the
series' own windows by a margin and in most of them; ``out_of_sample`` scores that whole
procedure on the latest window, chosen on the earlier ones only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from forecasting.evaluation.calibration import BinnedCalibrator, error_scale, fit_binned_calibrator
from forecasting.evaluation.losses import scale_denominator
from forecasting.evaluation.pooled_ensemble import combine_members, greedy_weights, mean_scaled_loss

ENSEMBLE = "Ensemble"


def publishable(forecast: np.ndarray, nonneg: np.ndarray) -> np.ndarray:
    """What would be published: quantiles sorted (last axis), clipped at 0 where ``nonneg`` holds.

    ``nonneg`` has the shape of ``forecast`` without its last two axes (horizon, quantiles).
    """
    out = np.sort(forecast, axis=-1)
    out[nonneg] = np.maximum(out[nonneg], 0.0)
    return out


@dataclass
class Pool:
    """The raw forecasts and actuals of a pool's series (see the module docstring for the axes)."""

    labels: list[str]  # single candidates, in configured order
    raw: np.ndarray  # (m, n, slots, h, nq); NaN where a candidate has no forecast
    actual: np.ndarray  # (n, slots, h); NaN for the future and for windows a series does not have
    spread: np.ndarray  # (n, slots) scale of the history up to each origin
    nonneg: np.ndarray  # (n, slots) history up to the origin has no negative value
    volatility: np.ndarray  # (n, slots) scale over mean absolute level of the history up to the origin
    quantiles: tuple[float, ...]
    members: list[int]  # candidates that may enter the ensemble
    prior: list[int] = field(default_factory=list)  # members that share the prior weight

    @property
    def n_series(self) -> int:
        return self.raw.shape[1]

    @property
    def n_slots(self) -> int:
        return self.raw.shape[2]


@dataclass
class Fitted:
    """What ``fit_procedure`` learned, and the forecasts at its target slot."""

    forecasts: dict[str, np.ndarray]  # label (singles and ENSEMBLE) -> (n, h, nq), publishable
    calibrators: dict[str, BinnedCalibrator]
    weights: dict[str, float]


def _rows(values: np.ndarray, slots: Sequence[int]) -> np.ndarray:
    """Stack the given slots of a (n, slots, ...) array into rows."""
    return values[:, list(slots)].reshape(-1, *values.shape[2:])


def _error_scales(raw: np.ndarray, scale: np.ndarray, quantiles: Sequence[float]) -> np.ndarray:
    """``error_scale`` of raw forecasts (n, slots, h, nq) with the series' scale (n, slots): (n, slots, h)."""
    n, slots = raw.shape[:2]
    flat = error_scale(raw.reshape(n * slots, *raw.shape[2:]), quantiles, scale.reshape(-1))
    return flat.reshape(n, slots, -1)


def _filled(raw: np.ndarray, median_index: int) -> np.ndarray:
    return np.where(np.isfinite(raw), raw, raw[..., [median_index]])


def origin_features(past: np.ndarray) -> tuple[float, bool, float]:
    """What calibration needs to know of a history up to an origin: its scale (the MASE
    denominator, m = 1), whether it has no negative value, and its relative volatility."""
    scale = scale_denominator(past, m=1)
    level = float(np.mean(np.abs(past))) if past.size else 0.0
    return scale, bool(np.all(past >= 0)), scale / level if level > 0 else float("nan")


def calibrate_rows(
    raw: np.ndarray, calibrator: BinnedCalibrator, scale: np.ndarray, volatility: np.ndarray, nonneg: np.ndarray,
    quantiles: Sequence[float],
) -> np.ndarray:
    """Raw forecasts (rows, h, nq) calibrated and made publishable; ``scale``, ``volatility`` and
    ``nonneg`` per row (``origin_features`` of each row's history). Training and the registered
    bundle calibrate with this one function."""
    spread = error_scale(raw, quantiles, scale)
    return publishable(calibrator.apply(_filled(raw, list(quantiles).index(0.5)), spread, volatility), nonneg)


def fit_procedure(pool: Pool, available: Sequence[int], target: int, rounds: int, prior_rounds: float) -> Fitted:
    """Calibrators, ensemble weights and calibrated forecasts at ``target``, learned on ``available`` slots."""
    quantiles = pool.quantiles
    slots = [*available, target]
    learn = range(len(available))  # positions of the available slots in ``slots``
    actual = _rows(pool.actual[:, slots], learn)
    volatility = pool.volatility[:, slots]
    calibrated: dict[str, np.ndarray] = {}  # label -> (n, len(slots), h, nq), publishable
    calibrators: dict[str, BinnedCalibrator] = {}
    for c, label in enumerate(pool.labels):
        raw = pool.raw[c][:, slots]
        spread = _error_scales(raw, pool.spread[:, slots], quantiles)
        calibrators[label], calibrated[label] = _calibrate(raw, spread, volatility, actual, learn, pool, slots)
    members = [pool.labels[c] for c in pool.members]
    prior = [pool.labels[c] for c in pool.prior if c in pool.members]
    history = {m: _rows(calibrated[m], learn) for m in members}
    weights = ensemble_weights(history, actual, _rows(pool.spread[:, slots], learn), quantiles, rounds, prior, prior_rounds)
    ensemble = _ensemble(calibrated, weights, calibrated[pool.labels[0]].shape)
    spread = _error_scales(ensemble, pool.spread[:, slots], quantiles)
    calibrators[ENSEMBLE], calibrated[ENSEMBLE] = _calibrate(ensemble, spread, volatility, actual, learn, pool, slots)
    forecasts = {label: values[:, -1] for label, values in calibrated.items()}
    return Fitted(forecasts, calibrators, weights)


def _calibrate(
    raw: np.ndarray, spread: np.ndarray, volatility: np.ndarray, actual: np.ndarray, learn: range, pool: Pool,
    slots: Sequence[int],
) -> tuple[BinnedCalibrator, np.ndarray]:
    """A calibrator fitted on the ``learn`` slots of ``raw`` (n, slots, h, nq), and every slot calibrated."""
    median_index = pool.quantiles.index(0.5)
    calibrator = fit_binned_calibrator(_rows(_filled(raw, median_index), learn), actual, _rows(spread, learn),
                                       _rows(volatility, learn), pool.quantiles)
    n, n_slots = raw.shape[:2]
    flat = calibrate_rows(raw.reshape(n * n_slots, *raw.shape[2:]), calibrator, pool.spread[:, slots].reshape(-1),
                          volatility.reshape(-1), pool.nonneg[:, slots].reshape(-1), pool.quantiles)
    return calibrator, flat.reshape(raw.shape)


def _ensemble(calibrated: dict[str, np.ndarray], weights: dict[str, float], shape: tuple[int, ...]) -> np.ndarray:
    """The weighted ensemble at every slot of ``calibrated`` (n, slots, h, nq); NaN without members."""
    if not weights:
        return np.full(shape, np.nan)
    labels = list(weights)
    stacked = np.stack([calibrated[label] for label in labels])  # (m, n, slots, h, nq)
    m, n, slots = stacked.shape[:3]
    flat = stacked.reshape(m, n * slots, *stacked.shape[3:])
    combined = combine_members(flat, np.array([weights[label] for label in labels]))
    return combined.reshape(n, slots, *stacked.shape[3:])


def ensemble_weights(
    history: dict[str, np.ndarray],
    actual: np.ndarray,
    spread: np.ndarray,
    quantiles: Sequence[float],
    rounds: int,
    prior: Sequence[str],
    prior_rounds: float,
) -> dict[str, float]:
    """Greedy weights of the members on their backtest rows, on top of a prior shared by ``prior``.

    ``history``: member -> calibrated backtest forecasts (rows, h, nq) aligned with ``actual``
    (rows, h) and ``spread`` (rows,). The prior is ``prior_rounds`` units of weight split
    equally among the members of ``prior`` (when at least two are present: an equal-weight
    combination is what the prior stands for); the evidence adds ``rounds`` units chosen
    greedily. With no backtest row the prior alone decides (equal weights when there is no
    prior either).
    """
    members = list(history)
    if not members:
        return {}
    counts = np.zeros(len(members))
    present = [label for label in prior if label in history]
    if len(present) >= 2:  # the prior is a combination: one model alone is no reason to lean on it
        for label in present:
            counts[members.index(label)] += prior_rounds / len(present)
    n_rows = next(iter(history.values())).shape[0]
    if n_rows and rounds > 0:
        stacked = np.stack([history[m] for m in members])
        counts = greedy_weights(stacked, actual, spread, quantiles, rounds, counts)
    if counts.sum() <= 0:
        counts = np.ones(len(members))
    return dict(zip(members, (counts / counts.sum()).tolist(), strict=True))


@dataclass
class Evidence:
    """Forward-only forecasts and losses of every candidate and the ensemble, and the future's fit."""

    forecasts: dict[str, np.ndarray]  # label -> (n, slots, h, nq); slot 0 = the future
    losses: dict[str, np.ndarray]  # label -> (n, slots) scaled quantile loss; NaN where not scored
    future: Fitted
    scored_slots: list[int]  # backtest slots that have a forward-only forecast


def forward_evidence(pool: Pool, lag: int, rounds: int, prior_rounds: float) -> Evidence:
    """Run the procedure for every backtest window on the windows known at its cutoff, then for the future.

    ``lag``: windows between a scored window and the latest one it may learn from (the
    horizon over the step, rounded up, so that no actual after the cutoff is used).
    """
    observed = [s for s in range(1, pool.n_slots) if np.isfinite(pool.actual[:, s]).any()]
    labels = [*pool.labels, ENSEMBLE]
    shape = (pool.n_series, pool.n_slots, pool.raw.shape[3], len(pool.quantiles))
    forecasts = {label: np.full(shape, np.nan) for label in labels}
    losses = {label: np.full((pool.n_series, pool.n_slots), np.nan) for label in labels}
    scored = []
    for slot in observed:
        available = [s for s in observed if s >= slot + lag]
        if not available:
            continue
        fitted = fit_procedure(pool, available, slot, rounds, prior_rounds)
        scored.append(slot)
        for label in labels:
            forecasts[label][:, slot] = fitted.forecasts[label]
            losses[label][:, slot] = mean_scaled_loss(
                fitted.forecasts[label], pool.actual[:, slot], pool.spread[:, slot], pool.quantiles
            )
    future = fit_procedure(pool, observed, 0, rounds, prior_rounds)
    for label in labels:
        forecasts[label][:, 0] = future.forecasts[label]
    return Evidence(forecasts, losses, future, scored)


def choose(
    losses: dict[str, np.ndarray], singles: Sequence[str], margin: float, min_windows: int, slots: Sequence[int]
) -> list[str]:
    """Per series: the ensemble, or the single candidate that beats it on the series' own windows.

    A single candidate replaces the ensemble when, on the ``slots`` where both were scored
    (at least ``min_windows`` of them), its mean loss is lower by more than ``margin`` (a
    share) and it is better in at least two thirds of those windows; among several, the
    lowest mean loss wins (ties: configured order).
    """
    default = losses[ENSEMBLE][:, list(slots)]
    chosen = [ENSEMBLE] * default.shape[0]
    for i in range(default.shape[0]):
        scored = np.isfinite(default[i])
        if scored.sum() < max(1, min_windows):
            continue
        base = default[i, scored]
        best, best_loss = ENSEMBLE, base.mean() * (1.0 - margin)
        for label in singles:
            values = losses[label][i, list(slots)][scored]
            if not np.all(np.isfinite(values)):
                continue
            wins = int((values < base).sum())
            if values.mean() < best_loss and wins * 3 >= 2 * values.size:
                best, best_loss = label, values.mean()
        chosen[i] = best
    return chosen


def out_of_sample(
    losses: dict[str, np.ndarray], singles: Sequence[str], scored_slots: Sequence[int], margin: float, min_windows: int
) -> dict[str, object]:
    """The procedure's own loss on the latest scored window, having chosen on the earlier ones only.

    Returns the mean scaled quantile loss on that window of: the selection (``selected``),
    the ensemble, each single candidate (over the same series, NaN where it has no
    forecast), and the number of series; None when fewer than two windows were scored.
    """
    if len(scored_slots) < 2:
        return {}
    latest, earlier = min(scored_slots), [s for s in scored_slots if s != min(scored_slots)]
    chosen = choose(losses, singles, margin, min_windows, earlier)
    series = np.isfinite(losses[ENSEMBLE][:, latest])
    picked = np.array([losses[label][i, latest] for i, label in enumerate(chosen)])
    result: dict[str, object] = {
        "n_series": int(series.sum()),
        "window": int(latest),
        "selected": float(np.nanmean(picked[series])) if series.any() else float("nan"),
        "switched_series": int(sum(1 for i, label in enumerate(chosen) if series[i] and label != ENSEMBLE)),
    }
    for label in [ENSEMBLE, *singles]:
        values = losses[label][series, latest]
        result[label] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
    return result
