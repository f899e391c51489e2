"""What one shard needs to know to train a series, built once from the settings."""

from __future__ import annotations

from dataclasses import dataclass

from forecasting.config import Settings
from forecasting.models.base import ForecastModel
from forecasting.models.catalog import instantiate, is_builtin, model_class

# Expensive models always see at least this many observations, whatever the season length.
MIN_HISTORY_CAP = 100


@dataclass(frozen=True)
class IsolationLimits:
    """Limits of the child process a plug-in candidate is fitted in."""

    timeout_seconds: float  # wall clock per series (all its backtest windows and the refit)
    memory_limit_mb: int  # address space of the child (RLIMIT_AS)


@dataclass(frozen=True)
class Candidate:
    """A configured model under its label (unfitted prototype; clone before use).

    ``isolation`` set: the model is a plug-in, fitted in a child process under these
    limits; None: fitted in this process (built-ins).
    """

    label: str
    model: ForecastModel
    isolation: IsolationLimits | None = None

    @property
    def precomputed(self) -> bool:
        """Its forecasts come from elsewhere: a child process (plug-in) or the shard's global step."""
        return self.isolation is not None or self.model.get_tag("scope") == "global"

    @property
    def expensive(self) -> bool:
        return bool(self.model.get_tag("expensive"))


@dataclass(frozen=True)
class TrainingPlan:
    horizon: int
    quantiles: tuple[float, ...]
    season_length: int
    n_windows: int
    step: int
    history_cap: int
    fit_time_limit: float
    conformal_windows: int
    ensemble_top_k: int
    explosion_factor: float
    candidates: tuple[Candidate, ...]
    fallbacks: tuple[Candidate, ...]
    switching_margin: float = 0.0  # keep a series' previous winner unless beaten by this share
    weighted_rounds: int = 0  # rounds of the weighted ensemble's greedy selection; 0 = no weighted ensemble
    skip_expensive_margin: float | None = None  # cost rule (training.series); None = every window of every candidate

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        candidates: tuple[Candidate, ...] | None = None,
        fallbacks: tuple[Candidate, ...] | None = None,
    ) -> TrainingPlan:
        """The plan of a run; a plug-in that fails the conformance kit cannot be activated.

        ``candidates`` / ``fallbacks`` replace the configured ones (the conformance kit's own plans).
        """
        if candidates is None:
            candidates = tuple(_candidate(c.label, c.name, c.params, settings) for c in settings.models.candidates)
        if fallbacks is None:
            fallbacks = tuple(_candidate(name, name, {}, settings) for name in settings.models.fallback)
        season = settings.season_length
        return cls(
            horizon=settings.forecast.horizon,
            quantiles=tuple(settings.forecast.quantiles),
            season_length=season,
            n_windows=settings.backtest.n_windows,
            step=settings.backtest_step,
            history_cap=max(MIN_HISTORY_CAP, int(round(settings.models.max_history_seasons * season))),
            fit_time_limit=settings.models.fit_time_limit_seconds,
            conformal_windows=settings.models.conformal_windows,
            ensemble_top_k=settings.selection.ensemble_top_k,
            explosion_factor=settings.selection.explosion_factor,
            candidates=candidates,
            fallbacks=fallbacks,
            switching_margin=settings.registry.switching_margin,
            weighted_rounds=settings.ensemble.rounds if settings.ensemble.weighted else 0,
            skip_expensive_margin=settings.cost.skip_expensive_margin,
        )

    @property
    def candidate_order(self) -> list[str]:
        return [c.label for c in self.candidates]

    def capped_history(self, candidate: Candidate) -> int | None:
        """How many of the latest observations ``candidate`` sees (None: all of them)."""
        return self.history_cap if candidate.expensive else None

    def eligible(self, candidate: Candidate, lifecycle: str, train_length: int) -> bool:
        """Whether ``candidate`` is backtested on a series of this lifecycle and training length."""
        if lifecycle not in candidate.model.get_tag("demand_types"):
            return False
        usable = min(train_length, self.history_cap) if candidate.expensive else train_length
        return usable >= candidate.model.min_history(self.season_length)


def _candidate(label: str, name: str, params: dict, settings: Settings) -> Candidate:
    found = model_class(name)
    model = instantiate(found, params, settings.season_length)
    if is_builtin(found):
        return Candidate(label, model)
    # Imported here: the conformance kit runs real backtests, so it imports this module.
    from forecasting.training.activation import ensure_conformant

    ensure_conformant(name, settings)
    if not settings.plugins.isolation:
        return Candidate(label, model)
    timeout, memory = settings.plugins.limits_for(name)
    return Candidate(label, model, IsolationLimits(timeout, memory))
