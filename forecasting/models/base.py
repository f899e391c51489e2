"""The model contract that every candidate implements, built-in or plug-in.

Rules (scikit-learn / sktime style):
- ``__init__`` stores its keyword parameters as attributes and does nothing else;
- fitted state ends in ``_``;
- authors implement ``_fit`` and ``_predict``; the public ``fit`` and ``predict``
  live here and do the checks;
- capabilities are data: the ``tags`` mapping;
- ``get_test_params`` returns cheap settings for the conformance checks.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

DEFAULT_TAGS: dict[str, Any] = {
    "scope": "local",  # "local" (one series) or "global" (many series)
    "native_quantiles": False,  # True: _predict returns every requested quantile
    "exogenous": False,  # True: uses X / X_future
    "min_history": 1,  # observations a fit needs at least ...
    "min_history_seasons": 0.0,  # ... and this many seasons (season_length x value)
    "demand_types": ("smooth", "intermittent"),  # lifecycle classes it is meant for
    "expensive": False,  # True: sees only the capped history (models.max_history_seasons)
    "multiple_seasonalities": False,  # True: takes every seasonal cycle; a candidate only where there are several
}


class ModelError(RuntimeError):
    """A model failed to fit or predict; the message names the model."""


class HistoryTooShortError(ValueError):
    """The history is shorter than the model's declared minimum."""


class NotFittedError(RuntimeError):
    """``predict`` was called before ``fit``."""


@dataclass
class Forecast:
    """What a model returns: a point forecast and quantile forecasts of length h."""

    point: np.ndarray
    quantiles: dict[float, np.ndarray] = field(default_factory=dict)


def model_season_length(model: Any) -> int:
    """The model's own season length (1 if it has none; the longest of several, e.g. MSTL's)."""
    value = getattr(model, "season_length", None)
    seasons = np.atleast_1d(np.asarray(1 if value is None else value, dtype=np.float64))
    return max(1, int(seasons.max())) if seasons.size else 1


class ForecastModel:
    """Base class of every candidate model (template method for fit and predict)."""

    tags: ClassVar[Mapping[str, Any]] = {}

    # --- parameters -----------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        named_kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        signature = inspect.signature(cls.__init__)
        return [
            name
            for name, parameter in signature.parameters.items()
            if name != "self" and parameter.kind in named_kinds
        ]

    def get_params(self) -> dict[str, Any]:
        """The constructor's parameters and their current values."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> ForecastModel:
        unknown = sorted(set(params) - set(self._param_names()))
        if unknown:
            raise ValueError(f"{type(self).__name__} has no parameters {unknown}")
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def clone(self) -> ForecastModel:
        """An unfitted copy with the same parameters."""
        return type(self)(**copy.deepcopy(self.get_params()))

    @classmethod
    def get_tag(cls, name: str) -> Any:
        return {**DEFAULT_TAGS, **cls.tags}.get(name)

    @classmethod
    def get_tags(cls) -> dict[str, Any]:
        return {**DEFAULT_TAGS, **cls.tags}

    @classmethod
    def get_test_params(cls) -> list[dict[str, Any]]:
        """Cheap parameter sets for the conformance checks."""
        return [{}]

    def min_history(self, season_length: int) -> int:
        """Observations this model needs to fit."""
        seasons = float(self.get_tag("min_history_seasons"))
        return max(int(self.get_tag("min_history")), int(np.ceil(seasons * season_length)))

    # --- template methods -------------------------------------------------------------
    def fit(self, y: np.ndarray, X: np.ndarray | None = None) -> ForecastModel:
        """Fit on one series ``y`` (1-D, finite); returns self."""
        values = np.asarray(y, dtype=np.float64)
        if values.ndim != 1:
            raise ValueError(f"{type(self).__name__}.fit expects a 1-D series, got shape {values.shape}")
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{type(self).__name__}.fit got non-finite values")
        needed = self.min_history(model_season_length(self))
        if values.size < needed:
            raise HistoryTooShortError(
                f"{type(self).__name__} needs at least {needed} observations, got {values.size}"
            )
        self._fit(values, X)
        self.n_obs_ = int(values.size)
        return self

    def predict(self, h: int, quantiles: Sequence[float] = (), X_future: np.ndarray | None = None) -> Forecast:
        """Forecast ``h`` steps; native-quantile models also return ``quantiles``."""
        if not hasattr(self, "n_obs_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit first")
        if h < 1:
            raise ValueError(f"horizon must be at least 1, got {h}")
        forecast = self._predict(int(h), tuple(quantiles), X_future)
        forecast.point = np.asarray(forecast.point, dtype=np.float64)
        if forecast.point.shape != (h,):
            raise ModelError(f"{type(self).__name__} returned {forecast.point.shape} points for horizon {h}")
        return forecast

    def forward(self, y: np.ndarray, h: int, quantiles: Sequence[float] = ()) -> Forecast:
        """Forecast ``h`` steps after a new history ``y`` with the parameters already fitted.

        No parameter is estimated again: a model fitted at an early backtest cutoff is moved
        to a later one (statsforecast's ``forward``). Models without their own ``_forward``
        fit a clone on ``y`` instead, which gives the same contract at the cost of a fit.
        """
        if not hasattr(self, "n_obs_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit first")
        if type(self)._forward is ForecastModel._forward:
            return self.clone().fit(y).predict(h, quantiles)
        values = np.asarray(y, dtype=np.float64)
        if values.ndim != 1 or not np.all(np.isfinite(values)):
            raise ValueError(f"{type(self).__name__}.forward expects a finite 1-D series")
        needed = self.min_history(model_season_length(self))
        if values.size < needed:
            raise HistoryTooShortError(
                f"{type(self).__name__} needs at least {needed} observations, got {values.size}"
            )
        forecast = self._forward(values, int(h), tuple(quantiles))
        forecast.point = np.asarray(forecast.point, dtype=np.float64)
        if forecast.point.shape != (h,):
            raise ModelError(f"{type(self).__name__} returned {forecast.point.shape} points for horizon {h}")
        return forecast

    # --- what an author implements --------------------------------------------------
    def _fit(self, y: np.ndarray, X: np.ndarray | None) -> None:
        raise NotImplementedError

    def _forward(self, y: np.ndarray, h: int, quantiles: tuple[float, ...]) -> Forecast:
        """Optional: forecast after ``y`` with the fitted parameters (see ``forward``)."""
        raise NotImplementedError

    def _predict(self, h: int, quantiles: tuple[float, ...], X_future: np.ndarray | None) -> Forecast:
        raise NotImplementedError

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"
