"""What one shard needs to know to train a series, built once from the settings."""

from __future__ import annotations

from dataclasses import dataclass

from forecasting.config import Settings
from forecasting.models.base import ForecastModel
from forecasting.models.catalog import build_model

# Expensive models always see at least this many observations, whatever the season length.
MIN_HISTORY_CAP = 100


@dataclass(frozen=True)
class Candidate:
    """A configured model under its label (unfitted prototype; clone before use)."""

    label: str
    model: ForecastModel

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

    @classmethod
    def from_settings(cls, settings: Settings) -> TrainingPlan:
        season = settings.season_length
        candidates = tuple(
            Candidate(c.label, build_model(c.name, c.params, season)) for c in settings.models.candidates
        )
        fallbacks = tuple(Candidate(name, build_model(name, {}, season)) for name in settings.models.fallback)
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
        )

    @property
    def candidate_order(self) -> list[str]:
        return [c.label for c in self.candidates]
