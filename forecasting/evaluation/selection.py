"""Rank candidates by loss, and the median ensemble of versions registered before the pooled one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

ENSEMBLE_LABEL = "MedianEnsemble"


def rank_candidates(mean_losses: Mapping[str, float], order: Sequence[str]) -> list[str]:
    """Candidates by ascending loss; ties go to the earlier one in ``order`` (deterministic)."""
    position = {label: i for i, label in enumerate(order)}
    finite = [label for label, loss in mean_losses.items() if np.isfinite(loss)]
    return sorted(finite, key=lambda label: (round(mean_losses[label], 12), position.get(label, len(position))))


def median_ensemble(forecasts: Sequence[Mapping[float, np.ndarray]]) -> dict[float, np.ndarray]:
    """Quantile-wise median of several quantile forecasts."""
    levels = sorted(forecasts[0])
    return {q: np.median(np.vstack([f[q] for f in forecasts]), axis=0) for q in levels}
