"""The fallback chain: a series' models in order, the first forecast that passes the quality gate wins.

Training (``training.selection_step``: the choice, the ensemble, the other candidates by
loss, the fallback models) and serving (``registry.bundle``: the manifest's model, the
fallback models) walk the same chain. Where the forecasts come from is the caller's: a
link's forecast is produced on demand, and a link that raises or fails the gate costs the
series that link only. Serving advances many series' chains in rounds, one link each, so
that the forecasts a round needs are computed together (``FallbackChain.attempt``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from forecasting.data.contract import STATUS_FALLBACK, STATUS_NEW, STATUS_OK
from forecasting.evaluation.quality import GateResult, quality_gate

QuantileForecast = Mapping[float, np.ndarray]
NON_FINITE = "non_finite_forecast"  # the gate's failure for a forecast with a NaN or an infinity


def chain_labels(first: Sequence[str], fallbacks: Sequence[str]) -> list[str]:
    """The order a series' models are tried: ``first`` then ``fallbacks``, each label once."""
    return list(dict.fromkeys([*first, *fallbacks]))


@dataclass(frozen=True)
class Failure:
    """Why one link of a chain did not publish."""

    label: str
    gate: str | None  # the quality gate's failure; None when the link produced no forecast
    error: Exception | None = None  # what the link raised (gate is None)

    @property
    def no_forecast(self) -> bool:
        """True when there was nothing to publish: the link raised, or its forecast is not finite."""
        return self.gate is None or self.gate == NON_FINITE


class FallbackChain:
    """One series' walk down its chain of model labels (each label once, in order)."""

    def __init__(self, labels: Sequence[str], history: np.ndarray, explosion_factor: float) -> None:
        self.labels = chain_labels(labels, ())
        self.history = history  # what the gate measures an explosion against
        self.explosion_factor = explosion_factor
        self.position = 0
        self.failures: list[Failure] = []
        self.passed: GateResult | None = None

    @property
    def current(self) -> str:
        """The label tried next (or the one that passed)."""
        return self.labels[self.position]

    @property
    def open(self) -> bool:
        """True while a link is left to try and none has passed."""
        return self.passed is None and self.position < len(self.labels)

    def attempt(self, produce: Callable[[], QuantileForecast]) -> GateResult | None:
        """Gate the current link's forecast (``produce()``); the gated forecast, or None and move on."""
        label = self.current
        try:
            gate = quality_gate(dict(produce()), self.history, self.explosion_factor)
        except Exception as exc:  # noqa: BLE001 - a failing model costs the series that link only
            self._fail(Failure(label, None, exc))
            return None
        if gate.failure is not None:
            self._fail(Failure(label, gate.failure))
            return None
        self.passed = gate
        return gate

    def walk(self, forecast_of: Callable[[str], QuantileForecast]) -> GateResult | None:
        """Try the links in order until one passes (``forecast_of(label)``); None when all failed."""
        while self.open:
            self.attempt(lambda label=self.current: forecast_of(label))
        return self.passed

    def status(self, first_is_choice: bool = True, new: bool = False) -> str:
        """The published status of the link that passed: ``new`` (a short history), ``ok`` for the
        first link when it is the series' own choice, else ``fallback``."""
        if new:
            return STATUS_NEW
        return STATUS_OK if self.position == 0 and first_is_choice else STATUS_FALLBACK

    def _fail(self, failure: Failure) -> None:
        self.failures.append(failure)
        self.position += 1
