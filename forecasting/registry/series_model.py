"""What a series' model is: the one place that reads a winners manifest entry.

A series is forecast by one candidate, or by a combination of candidates: the quantile-wise
median of its members, or their quantile-wise weighted mean. ``SeriesModel`` holds the
members and their weights, so two versions can be compared by what they forecast (their
``key``), never by the label alone: two ``MedianEnsemble`` entries with other members are
two different models. The bundle, the switching margin and the champion decision read a
manifest row only through ``SeriesModel.from_manifest``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from forecasting.evaluation.procedure import ENSEMBLE
from forecasting.evaluation.selection import ENSEMBLE_LABEL, median_ensemble
from forecasting.evaluation.weighted_ensemble import (
    WEIGHTED_LABEL,
    combine,
    format_weights,
    parse_weights,
)

QuantileForecast = dict[float, np.ndarray]
SINGLE, MEDIAN, WEIGHTED = "single", "median", "weighted"


@dataclass(frozen=True)
class SeriesModel:
    """A series' model: its label, how it combines its members, and their weights."""

    label: str
    kind: str  # single, median or weighted
    members: tuple[tuple[str, float], ...]  # (candidate label, weight); a single model is its own member

    @classmethod
    def single(cls, label: str) -> SeriesModel:
        return cls(label, SINGLE, ((label, 1.0),))

    @classmethod
    def median(cls, members: list[str]) -> SeriesModel:
        return cls(ENSEMBLE_LABEL, MEDIAN, tuple((m, 1.0 / len(members)) for m in members))

    @classmethod
    def weighted(cls, weights: Mapping[str, float]) -> SeriesModel:
        return cls(WEIGHTED_LABEL, WEIGHTED, tuple((m, float(w)) for m, w in weights.items() if w > 0))

    @classmethod
    def from_manifest(cls, model: str, ensemble_members: object = "") -> SeriesModel:
        """The model of a manifest (or ledger) row: ``model`` and its ``ensemble_members`` text."""
        text = "" if ensemble_members is None or (isinstance(ensemble_members, float) and np.isnan(ensemble_members)) \
            else str(ensemble_members)
        if model == WEIGHTED_LABEL:
            return cls.weighted(parse_weights(text))
        if model == ENSEMBLE and text:  # the pooled ensemble: its members' weights
            weights = parse_weights(text)
            return cls(ENSEMBLE, WEIGHTED, tuple((m, float(w)) for m, w in weights.items() if w > 0))
        if model == ENSEMBLE_LABEL:
            return cls.median([m for m in text.split(",") if m])
        return cls.single(str(model))

    @property
    def labels(self) -> list[str]:
        """The candidates that must be forecast to build this model."""
        return [label for label, _ in self.members]

    @property
    def members_text(self) -> str:
        """The manifest's ``ensemble_members`` text of this model ("" for a single model)."""
        if self.kind == WEIGHTED:
            return format_weights(dict(self.members))
        return ",".join(self.labels) if self.kind == MEDIAN else ""

    def key(self) -> str:
        """What the model forecasts, as text: equal keys, equal forecasts from the same members."""
        if self.kind == SINGLE:
            return self.label
        if self.kind == MEDIAN:
            return f"median({','.join(sorted(self.labels))})"
        return f"weighted({','.join(f'{m}:{w:.6g}' for m, w in sorted(self.members))})"

    def combine(self, forecasts: Mapping[str, QuantileForecast]) -> QuantileForecast:
        """This model's forecast from its members' forecasts (every member must be present)."""
        if not self.members:
            raise ValueError(f"{self.label}: no members recorded")
        missing = [label for label in self.labels if label not in forecasts]
        if missing:
            raise KeyError(f"{self.label}: no forecast of member(s) {missing}")
        if self.kind == SINGLE:
            return dict(forecasts[self.label])
        if self.kind == MEDIAN:
            return median_ensemble([forecasts[m] for m in self.labels])
        return combine({m: forecasts[m] for m in self.labels}, dict(self.members))
