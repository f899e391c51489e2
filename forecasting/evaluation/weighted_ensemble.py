"""Per-series weighted ensemble: greedy forward selection with replacement (Caruana et al., 2004).

Each round adds one more unit of weight to the candidate that most lowers the
ensemble's mean scaled quantile loss on the chosen backtest windows; weights are
the counts divided by the rounds (AutoGluon's ``WeightedEnsemble``). Scored
honestly by cross-fitting: the forecast of window i combines the candidates with
weights chosen on the other windows only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from forecasting.evaluation.losses import scaled_quantile_loss

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


def greedy_weights(
    forecasts: Mapping[str, Sequence[QuantileForecast]],
    actuals: Sequence[np.ndarray],
    scales: Sequence[float],
    windows: Sequence[int],
    rounds: int,
) -> dict[str, float]:
    """Weights chosen on ``windows`` (indices into each candidate's per-window forecasts).

    Ties go to the candidate first in ``forecasts``' order, so the result is deterministic.
    """
    labels = list(forecasts)
    counts = dict.fromkeys(labels, 0)
    for used in range(1, rounds + 1):
        best_label, best_loss = labels[0], np.inf
        for label in labels:
            trial = {m: (c + (m == label)) / used for m, c in counts.items() if c + (m == label) > 0}
            loss = np.mean([
                scaled_quantile_loss(actuals[i], combine({m: forecasts[m][i] for m in trial}, trial), scales[i])
                for i in windows
            ])
            if loss < best_loss - 1e-12:
                best_label, best_loss = label, loss
        counts[best_label] += 1
    return {label: count / rounds for label, count in counts.items() if count}


def cross_fitted(
    forecasts: Mapping[str, Sequence[QuantileForecast]],
    actuals: Sequence[np.ndarray],
    scales: Sequence[float],
    rounds: int,
) -> tuple[list[dict[float, np.ndarray]], dict[str, float]]:
    """Per window, the ensemble with weights chosen on the other windows; and the weights from all of them.

    Needs at least two windows, so that no window's score comes from weights it chose.
    """
    n = len(actuals)
    if n < 2:
        raise ValueError("the weighted ensemble needs at least two backtest windows")
    per_window = []
    for i in range(n):
        weights = greedy_weights(forecasts, actuals, scales, [j for j in range(n) if j != i], rounds)
        per_window.append(combine({m: forecasts[m][i] for m in weights}, weights))
    return per_window, greedy_weights(forecasts, actuals, scales, list(range(n)), rounds)
