"""Built-in candidates: thin adapters from statsforecast models to the model contract."""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import numpy as np
import statsforecast.models as sf_models
from statsforecast import ces

from forecasting.models import ces_intervals
from forecasting.models.base import Forecast, ForecastModel
from forecasting.models.params import Constraint

_NOT_PARAMETERS = {"self", "alias", "prediction_intervals"}


def interval_level(q: float) -> float:
    """Central interval level (in percent) whose bound is quantile ``q``: 0.1 -> 80."""
    level = round(abs(1.0 - 2.0 * q) * 100.0, 6)
    return int(level) if float(level).is_integer() else level


def quantiles_from_intervals(result: dict[str, np.ndarray], quantiles: tuple[float, ...]) -> dict[float, np.ndarray]:
    """Turn statsforecast's ``lo-L``/``hi-L`` interval bounds into quantile forecasts."""
    out: dict[float, np.ndarray] = {}
    for q in quantiles:
        if abs(q - 0.5) < 1e-12:
            out[q] = np.asarray(result["mean"], dtype=np.float64)
            continue
        side = "lo" if q < 0.5 else "hi"
        out[q] = np.asarray(result[f"{side}-{interval_level(q)}"], dtype=np.float64)
    return out


class StatsForecastModel(ForecastModel):
    """Adapter base: subclasses name the statsforecast class in ``sf_class``."""

    sf_class: ClassVar[type]

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(self._param_names()))
        if unknown:
            raise TypeError(f"{type(self).__name__} got unknown parameters {unknown}")
        for name in self._param_names():
            default = self._defaults().get(name)
            setattr(self, name, params.get(name, default))

    @classmethod
    def _defaults(cls) -> dict[str, Any]:
        signature = inspect.signature(cls.sf_class.__init__)
        defaults = {
            name: parameter.default
            for name, parameter in signature.parameters.items()
            if name not in _NOT_PARAMETERS and parameter.default is not inspect.Parameter.empty
        }
        return {**defaults, **getattr(cls, "default_params", {})}

    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.sf_class.__init__)
        return [name for name in signature.parameters if name not in _NOT_PARAMETERS]

    def min_history(self, season_length: int) -> int:
        # Window models (WindowAverage) need a full window.
        return max(super().min_history(season_length), int(getattr(self, "window_size", 0) or 0))

    def _fit(self, y: np.ndarray, X: np.ndarray | None) -> None:
        self.model_ = self.sf_class(**self.get_params()).fit(y)

    def _predict(self, h: int, quantiles: tuple[float, ...], X_future: np.ndarray | None) -> Forecast:
        wanted, levels = self._levels(quantiles)
        result = self.model_.predict(h=h, level=levels or None)
        return Forecast(point=result["mean"], quantiles=quantiles_from_intervals(result, wanted))

    def _levels(self, quantiles: tuple[float, ...]) -> tuple[tuple[float, ...], list[float]]:
        wanted = quantiles if self.get_tag("native_quantiles") else ()
        return wanted, sorted({interval_level(q) for q in wanted if abs(q - 0.5) > 1e-12})


class ForwardStatsForecastModel(StatsForecastModel):
    """An adapter whose statsforecast model can be moved to a new history without refitting."""

    def _forward(self, y: np.ndarray, h: int, quantiles: tuple[float, ...]) -> Forecast:
        wanted, levels = self._levels(quantiles)
        result = self.model_.forward(y=y, h=h, level=levels or None)
        return Forecast(point=result["mean"], quantiles=quantiles_from_intervals(result, wanted))


class CESStatsForecastModel(ForwardStatsForecastModel):
    """AutoCES with its prediction intervals in closed form (``ces_intervals``), not simulated."""

    def _predict(self, h: int, quantiles: tuple[float, ...], X_future: np.ndarray | None) -> Forecast:
        return self._ces_forecast(self.model_, None, h, quantiles)

    def _forward(self, y: np.ndarray, h: int, quantiles: tuple[float, ...]) -> Forecast:
        return self._ces_forecast(self.model_, y, h, quantiles)

    def _ces_forecast(self, fitted: Any, y: np.ndarray | None, h: int, quantiles: tuple[float, ...]) -> Forecast:
        wanted, levels = self._levels(quantiles)
        state = getattr(fitted, "model_", None)
        # A constant history makes statsforecast fit a Naive instead; conformal intervals and
        # non-normal errors have no closed form: those keep statsforecast's own path.
        closed_form = (
            isinstance(fitted, sf_models.AutoCES) and fitted.prediction_intervals is None
            and isinstance(state, dict) and ces_intervals.applies(state)
        )
        if not closed_form:
            result = fitted.predict(h=h, level=levels or None) if y is None else fitted.forward(
                y=y, h=h, level=levels or None
            )
            return Forecast(point=result["mean"], quantiles=quantiles_from_intervals(result, wanted))
        if y is not None:
            state = ces.forward_ces(state, y=np.asarray(y, dtype=np.float64))
        result = {"mean": ces.forecast_ces(state, h)["mean"]}
        if levels:
            result.update(ces_intervals.interval_bounds(state, result["mean"], levels))
        return Forecast(point=result["mean"], quantiles=quantiles_from_intervals(result, wanted))


_POSITIVE_INTS = ("season_length", "window_size", "nmodels")
_SHARES = ("alpha_d", "alpha_p")  # smoothing weights: (0, 1]


def _constraints(sf_class: type, default_params: dict[str, Any]) -> dict[str, Constraint]:
    """What each parameter accepts: its default's kind, and the ranges statsforecast silently assumes."""
    signature = inspect.signature(sf_class.__init__)
    defaults = {n: p.default for n, p in signature.parameters.items()
                if n not in _NOT_PARAMETERS and p.default is not inspect.Parameter.empty}
    defaults.update(default_params)
    found: dict[str, Constraint] = {}
    for name in signature.parameters:
        if name in _NOT_PARAMETERS:
            continue
        default = defaults.get(name)
        if name == "season_length":
            found[name] = Constraint("ints", low=1, none_ok=False)
        elif name in _POSITIVE_INTS:
            found[name] = Constraint("int", low=1)
        elif name in _SHARES:
            found[name] = Constraint("real", low=0.0, high=1.0, low_open=True)
        elif isinstance(default, bool):
            found[name] = Constraint("bool")
        elif isinstance(default, int):
            found[name] = Constraint("int", low=0)
        elif isinstance(default, str):
            found[name] = Constraint("str")
    return found


def _adapter(
    sf_class: type,
    tags: dict[str, Any],
    default_params: dict[str, Any] | None = None,
    test_params: dict[str, Any] | None = None,
    base: type = StatsForecastModel,
) -> type:
    cheap = dict(test_params or {})
    namespace = {
        "sf_class": sf_class,
        "param_constraints": _constraints(sf_class, default_params or {}),
        "tags": tags,
        "default_params": default_params or {},
        "get_test_params": classmethod(lambda cls: [dict(cheap)]),
        "__doc__": f"statsforecast's {sf_class.__name__} under the model contract.",
        "__module__": __name__,
    }
    return type(sf_class.__name__, (base,), namespace)


_SMOOTH = ("smooth",)
_INTERMITTENT = ("intermittent",)
_ANY = ("smooth", "intermittent")
_AUTO = {"native_quantiles": True, "expensive": True, "demand_types": _SMOOTH, "min_history": 3}

# Minimum histories are statsforecast's own: below them AutoETS, AutoTheta and AutoCES
# raise NotImplementedError("tiny datasets") (ETS: n > npars + 4 with npars >= 2; Theta: n > 3;
# CES: n > 2, and no CES model fits 4 points).
_FORWARD = ForwardStatsForecastModel
AutoARIMA = _adapter(
    sf_models.AutoARIMA, _AUTO, test_params={"max_p": 1, "max_q": 1, "max_P": 1, "max_Q": 1}, base=_FORWARD
)
AutoETS = _adapter(sf_models.AutoETS, {**_AUTO, "min_history": 7}, base=_FORWARD)
AutoTheta = _adapter(sf_models.AutoTheta, {**_AUTO, "min_history": 4}, base=_FORWARD)
AutoCES = _adapter(sf_models.AutoCES, {**_AUTO, "min_history": 5}, base=CESStatsForecastModel)
SeasonalNaive = _adapter(
    sf_models.SeasonalNaive, {"native_quantiles": True, "min_history_seasons": 1.0, "demand_types": _ANY}
)
Naive = _adapter(sf_models.Naive, {"native_quantiles": True, "demand_types": _ANY})
HistoricAverage = _adapter(sf_models.HistoricAverage, {"native_quantiles": True, "demand_types": _ANY})
RandomWalkWithDrift = _adapter(
    sf_models.RandomWalkWithDrift, {"native_quantiles": True, "min_history": 2, "demand_types": _SMOOTH}
)
class MSTL(ForwardStatsForecastModel):
    """statsforecast's MSTL under the model contract, for series with several seasonal cycles.

    ``season_length`` is the list of cycles (the run's seasonalities); a fit keeps those the
    history holds at least twice. The model is meant for frequencies with several cycles
    (tag ``multiple_seasonalities``): with only one it is not a candidate.
    """

    sf_class = sf_models.MSTL
    tags: ClassVar[dict[str, Any]] = {**_AUTO, "multiple_seasonalities": True}
    default_params: ClassVar[dict[str, Any]] = {"trend_forecaster": sf_models.AutoETS(model="ZZN")}

    @classmethod
    def get_test_params(cls) -> list[dict[str, Any]]:
        return [{"season_length": [4, 12]}]

    def seasons(self) -> list[int]:
        return sorted(int(s) for s in np.atleast_1d(self.season_length) if int(s) > 1) or [1]

    def min_history(self, season_length: int) -> int:
        return max(int(self.get_tag("min_history")), 2 * self.seasons()[0])

    def _fit(self, y: np.ndarray, X: np.ndarray | None) -> None:
        fitting = [s for s in self.seasons() if 2 * s <= y.size] or self.seasons()[:1]
        params = {**self.get_params(), "season_length": fitting if len(fitting) > 1 else fitting[0]}
        self.model_ = self.sf_class(**params).fit(y)
WindowAverage = _adapter(sf_models.WindowAverage, {"demand_types": _ANY}, {"window_size": 13})
CrostonOptimized = _adapter(sf_models.CrostonOptimized, {"demand_types": _INTERMITTENT})
ADIDA = _adapter(sf_models.ADIDA, {"demand_types": _INTERMITTENT})
IMAPA = _adapter(sf_models.IMAPA, {"demand_types": _INTERMITTENT})
TSB = _adapter(sf_models.TSB, {"demand_types": _INTERMITTENT}, {"alpha_d": 0.2, "alpha_p": 0.2})

BUILTIN_MODELS: dict[str, type[ForecastModel]] = {
    cls.__name__: cls
    for cls in (
        AutoARIMA,
        AutoETS,
        AutoTheta,
        AutoCES,
        SeasonalNaive,
        Naive,
        HistoricAverage,
        RandomWalkWithDrift,
        MSTL,
        WindowAverage,
        CrostonOptimized,
        ADIDA,
        IMAPA,
        TSB,
    )
}
