"""Quality gate for a forecast before it is published."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class GateResult:
    """The gated quantiles, the repairs made, and the reason the gate failed (None = passed)."""

    quantiles: dict[float, np.ndarray]
    repairs: list[str] = field(default_factory=list)
    failure: str | None = None


def quality_gate(
    quantiles: dict[float, np.ndarray], history: np.ndarray, explosion_factor: float
) -> GateResult:
    """Check a forecast; repair what has a safe repair.

    - non-finite values fail (``non_finite_forecast``);
    - values beyond ``explosion_factor`` x the largest absolute history value fail
      (``forecast_explosion``);
    - crossing quantiles are sorted (``sorted_quantiles``, monotone rearrangement);
    - negative values are clipped to 0 when the history has none (``clipped_negative``).
    """
    levels = sorted(quantiles)
    matrix = np.vstack([np.asarray(quantiles[q], dtype=np.float64) for q in levels])
    if not np.all(np.isfinite(matrix)):
        return GateResult(quantiles, failure="non_finite_forecast")
    ceiling = explosion_factor * float(np.max(np.abs(history))) if history.size else np.inf
    if np.max(np.abs(matrix)) > ceiling + 1e-9:
        return GateResult(quantiles, failure="forecast_explosion")
    repairs = []
    if np.any(np.diff(matrix, axis=0) < 0):
        matrix = np.sort(matrix, axis=0)
        repairs.append("sorted_quantiles")
    if np.all(history >= 0) and np.any(matrix < 0):
        matrix = np.clip(matrix, 0.0, None)
        repairs.append("clipped_negative")
    return GateResult({q: matrix[i] for i, q in enumerate(levels)}, repairs)
