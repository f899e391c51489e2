"""Weighted combinations of quantile forecasts and the text form of their weights.

The pooled ensemble (``pooled_ensemble``) records its weights in the ledger and the
winners manifest as ``A:0.6,B:0.4``; versions registered before it may hold a
per-series ``WeightedEnsemble`` in the same form, which the registry still reads.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

WEIGHTED_LABEL = "WeightedEnsemble"
QuantileForecast = Mapping[float, np.ndarray]


def combine(forecasts: Mapping[str, QuantileForecast], weights: Mapping[str, float]) -> dict[float, np.ndarray]:
    """Quantile-wise weighted mean of the members' forecasts (monotone when every member is)."""
    members = [label for label, weight in weights.items() if weight > 0]
    levels = sorted(forecasts[members[0]])
    return {q: np.sum([weights[m] * np.asarray(forecasts[m][q]) for m in members], axis=0) for q in levels}


def format_weights(weights: Mapping[str, float]) -> str:
    """The ledger's and the winners manifest's text form of a weighted ensemble: ``A:0.6,B:0.4``."""
    return ",".join(f"{label}:{weight:g}" for label, weight in weights.items())


def parse_weights(text: str) -> dict[str, float]:
    """The inverse of ``format_weights``."""
    pairs = (item.rsplit(":", 1) for item in text.split(",") if item)
    return {label: float(weight) for label, weight in pairs}
