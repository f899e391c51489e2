"""What one shard needs to know to train a series, built once from the settings: plain data.

Building a plan checks nothing and starts no process. Whether a configured plug-in may take
part is decided before, by a step of its own (``forecasting.activation``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from forecasting.config import Settings
from forecasting.evaluation.windows import Window, backtest_windows, min_train_length
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
    move_forward: bool | None = None  # None: the plan's move_forward

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
    n_windows: int  # backtest windows per series at most
    step: int
    history_cap: int
    fit_time_limit: float
    conformal_windows: int
    explosion_factor: float
    candidates: tuple[Candidate, ...]
    fallbacks: tuple[Candidate, ...]
    seasonalities: tuple[int, ...] = ()
    min_train_share: float = 0.5  # a window trains on at least this share of the history
    move_forward: bool = True  # expensive models: fit at the earliest cutoff, move forward to the later ones
    selection_margin: float = 0.2  # leave the ensemble for a single candidate only when better by this share ...
    min_windows: int = 3  # ... over at least this many windows
    ensemble: bool = True  # the pooled ensemble is the default forecast
    ensemble_rounds: int = 10
    ensemble_prior: tuple[str, ...] = ()
    prior_rounds: float = 30.0
    skip_expensive_margin: float | None = None  # cost rule (training.batch); None = every window of every candidate

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        candidates: tuple[Candidate, ...] | None = None,
        fallbacks: tuple[Candidate, ...] | None = None,
    ) -> TrainingPlan:
        """The plan of a run: the configured models under their labels, plug-ins with their limits.

        ``candidates`` / ``fallbacks`` replace the configured ones (the conformance kit's own plans).
        A plug-in is not checked here: the pipeline activates the plug-ins before it builds a plan.
        """
        if candidates is None:
            candidates = tuple(
                replace(_candidate(c.label, c.name, c.params, settings), move_forward=c.move_forward)
                for c in settings.models.candidates
            )
        if fallbacks is None:
            fallbacks = tuple(_candidate(name, name, {}, settings) for name in settings.models.fallback)
        seasonalities = settings.seasonalities
        return cls(
            horizon=settings.forecast.horizon,
            quantiles=tuple(settings.forecast.quantiles),
            season_length=settings.season_length,
            seasonalities=seasonalities,
            n_windows=settings.backtest.n_windows,
            step=settings.backtest_step,
            min_train_share=settings.backtest.min_train_share,
            move_forward=settings.backtest.move_forward,
            history_cap=max(MIN_HISTORY_CAP, int(round(settings.models.max_history_seasons * max(seasonalities)))),
            fit_time_limit=settings.models.fit_time_limit_seconds,
            conformal_windows=settings.models.conformal_windows,
            explosion_factor=settings.selection.explosion_factor,
            candidates=candidates,
            fallbacks=fallbacks,
            selection_margin=settings.selection.margin,
            min_windows=settings.selection.min_windows,
            ensemble=settings.ensemble.enabled,
            ensemble_rounds=settings.ensemble.rounds,
            ensemble_prior=tuple(settings.ensemble.prior),
            prior_rounds=settings.ensemble.prior_rounds,
            skip_expensive_margin=settings.cost.skip_expensive_margin,
        )

    @property
    def candidate_order(self) -> list[str]:
        return [c.label for c in self.candidates]

    def moves_forward(self, candidate: Candidate) -> bool:
        """Whether ``candidate`` is fitted once and moved forward to the later cutoffs (else refitted at each)."""
        return self.move_forward if candidate.move_forward is None else candidate.move_forward

    def capped_history(self, candidate: Candidate) -> int | None:
        """How many of the latest observations ``candidate`` sees (None: all of them)."""
        return self.history_cap if candidate.expensive else None

    def windows(self, n_obs: int) -> list[Window]:
        """The backtest windows of a series of ``n_obs`` observations (oldest first; none if too short)."""
        min_train = min_train_length(n_obs, self.min_train_share, self.season_length)
        return backtest_windows(n_obs, self.horizon, self.n_windows, self.step, min_train)

    def eligible(self, candidate: Candidate, demand_type: str, train_length: int) -> bool:
        """Whether ``candidate`` runs on a series of this demand type (or lifecycle) and training length."""
        model = candidate.model
        if demand_type not in model.get_tag("demand_types"):
            return False
        if model.get_tag("multiple_seasonalities") and len(np.atleast_1d(getattr(model, "season_length", 1))) < 2:
            return False
        usable = min(train_length, self.history_cap) if candidate.expensive else train_length
        return usable >= model.min_history(self.season_length)


def _candidate(label: str, name: str, params: dict, settings: Settings) -> Candidate:
    found = model_class(name)
    model = instantiate(found, params, settings.season_length, settings.seasonalities, settings.forecast.freq)
    if is_builtin(found) or not settings.plugins.isolation:
        return Candidate(label, model)
    timeout, memory = settings.plugins.limits_for(name)
    return Candidate(label, model, IsolationLimits(timeout, memory))
