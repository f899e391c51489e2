"""Pick the winner per series from backtest losses; build the median ensemble."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

ENSEMBLE_LABEL = "MedianEnsemble"


def rank_candidates(mean_losses: Mapping[str, float], order: Sequence[str]) -> list[str]:
    """Candidates by ascending loss; ties go to the earlier one in ``order`` (deterministic)."""
    position = {label: i for i, label in enumerate(order)}
    finite = [label for label, loss in mean_losses.items() if np.isfinite(loss)]
    return sorted(finite, key=lambda label: (round(mean_losses[label], 12), position.get(label, len(position))))


def keep_previous(
    ranking: Sequence[str], mean_losses: Mapping[str, float], previous: str | None, margin: float
) -> tuple[list[str], str]:
    """Switching margin: the previous winner stays first unless the new one's loss is lower by ``margin``.

    Returns the ranking and what decided: "kept_by_margin", "switched" (the new winner beat the
    previous one by the margin) or "" (no previous winner among the ranked candidates, or no margin).
    """
    ranking = list(ranking)
    if margin <= 0 or not ranking or previous is None or previous not in ranking:
        return ranking, ""
    if previous == ranking[0]:
        return ranking, ""
    if mean_losses[ranking[0]] < mean_losses[previous] * (1.0 - margin):
        return ranking, "switched"
    return [previous, *[label for label in ranking if label != previous]], "kept_by_margin"


def top_k_members(ranking: Sequence[str], k: int) -> list[str]:
    """Members of the median ensemble: the best ``k`` single candidates (none if fewer than 2)."""
    members = [label for label in ranking if label != ENSEMBLE_LABEL][:k]
    return members if k >= 2 and len(members) >= 2 else []


def median_ensemble(forecasts: Sequence[Mapping[float, np.ndarray]]) -> dict[float, np.ndarray]:
    """Quantile-wise median of several quantile forecasts."""
    levels = sorted(forecasts[0])
    return {q: np.median(np.vstack([f[q] for f in forecasts]), axis=0) for q in levels}
