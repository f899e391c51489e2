"""The default forecast: a weighted ensemble whose weights are shared by the series of a pool.

Greedy forward selection with replacement (Caruana et al., 2004; AutoGluon's
``WeightedEnsemble``): each round adds one unit of weight to the member that most lowers
the ensemble's mean scaled quantile loss over every series and backtest window of the
pool. Sharing the weights across the series of a pool (a shard's demand class) makes
them rest on hundreds of windows instead of a series' two or three, so they are not
noise; a series leaves this default only on its own evidence (``evaluation.procedure``).

Members are combined quantile by quantile (weighted mean of the members' quantiles). A
member missing for a series (not eligible, failed) is left out and the others' weights
are renormalised.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def combine_members(members: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted quantile-wise mean of ``members`` (m, rows, h, nq); NaN rows of a member are skipped."""
    available = np.isfinite(members).all(axis=(2, 3))  # (m, rows)
    used = weights[:, None] * available
    total = used.sum(axis=0)
    filled = np.where(np.isfinite(members), members, 0.0)
    summed = np.einsum("mr,mrhq->rhq", used, filled)
    with np.errstate(invalid="ignore", divide="ignore"):
        return summed / np.where(total > 0, total, np.nan)[:, None, None]


def mean_scaled_loss(forecast: np.ndarray, actual: np.ndarray, scale: np.ndarray, quantiles: Sequence[float]) -> np.ndarray:
    """Scaled quantile loss per row: mean over steps and quantiles of ``2 rho_q / scale``."""
    q = np.asarray(quantiles, dtype=np.float64)
    error = actual[:, :, None] - forecast
    rho = np.maximum(q * error, (q - 1.0) * error)
    return 2.0 * rho.mean(axis=(1, 2)) / scale


def greedy_weights(
    members: np.ndarray,
    actual: np.ndarray,
    scale: np.ndarray,
    quantiles: Sequence[float],
    rounds: int,
    initial: np.ndarray | None = None,
) -> np.ndarray:
    """Weight counts of ``members`` (m, rows, h, nq) after ``rounds`` greedy rounds on the pooled rows.

    ``initial`` counts (a prior) are where the rounds start from. Ties go to the earlier
    member, so the result is deterministic. Rounds that find no scorable row add nothing.
    """
    m = members.shape[0]
    counts = np.zeros(m) if initial is None else np.asarray(initial, dtype=np.float64).copy()
    for _ in range(rounds):
        best, best_loss = 0, np.inf
        for j in range(m):
            trial = counts.copy()
            trial[j] += 1
            losses = mean_scaled_loss(combine_members(members, trial / trial.sum()), actual, scale, quantiles)
            finite = losses[np.isfinite(losses)]
            loss = float(finite.mean()) if finite.size else np.inf
            if loss < best_loss - 1e-12:
                best, best_loss = j, loss
        if not np.isfinite(best_loss):
            break
        counts[best] += 1
    return counts
