"""The model contract (docs/architecture.md, "The model contract"), checked on every built-in model.

Short synthetic series and season_length=4 keep this fast; AutoARIMA gets a small search
space (the only built-in whose default search costs more than a few milliseconds here).
"""

from __future__ import annotations

import pickle
from functools import cache
from typing import Any

import numpy as np
import pytest

from forecasting.models.base import (
    DEFAULT_TAGS,
    Forecast,
    ForecastModel,
    HistoryTooShortError,
    NotFittedError,
)
from forecasting.models.catalog import UnknownModelError, available_models, build_model
from forecasting.models.statsforecast_models import (
    BUILTIN_MODELS,
    MSTL,
    interval_level,
    quantiles_from_intervals,
)

# statsforecast's numeric warnings on tiny synthetic series are its own business.
pytestmark = [
    pytest.mark.filterwarnings("ignore::RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:Too few residuals after burn-in:UserWarning"),
]

SEASON = 4
H = 6
N_OBS = 40
QUANTILES = (0.025, 0.1, 0.5, 0.9, 0.975)
CHEAP_PARAMS: dict[str, dict[str, Any]] = {
    "AutoARIMA": {"max_p": 1, "max_q": 1, "max_P": 1, "max_Q": 1}
}
MODEL_NAMES = list(BUILTIN_MODELS)


def _series(n: int = N_OBS, seed: int = 0) -> np.ndarray:
    """Positive trend + season 4 + noise."""
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    return 20.0 + 0.2 * t + 3.0 * np.sin(2 * np.pi * t / SEASON) + rng.normal(0.0, 0.5, n)


def _make(name: str) -> ForecastModel:
    model_class = BUILTIN_MODELS[name]
    params = {**model_class.get_test_params()[0], **CHEAP_PARAMS.get(name, {})}
    return build_model(name, params, SEASON)


@cache
def _fitted(name: str) -> ForecastModel:
    """One fitted model per name, shared by read-only checks (never mutate it)."""
    return _make(name).fit(_series())


def _same(a: Any, b: Any) -> bool:
    """Equality that also accepts equal-state copies of objects without ``__eq__`` (MSTL's trend model)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, z) for x, z in zip(a, b, strict=True))
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    if a == b:
        return True
    return hasattr(a, "__dict__") and _same(vars(a), vars(b))


def _assert_same_forecast(a: Forecast, b: Forecast) -> None:
    np.testing.assert_array_equal(a.point, b.point)
    assert a.quantiles.keys() == b.quantiles.keys()
    for q in a.quantiles:
        np.testing.assert_array_equal(a.quantiles[q], b.quantiles[q])


def _is_fitted(model: ForecastModel) -> bool:
    return any(name.endswith("_") and not name.startswith("_") for name in vars(model))


# --- parameters ---------------------------------------------------------------------


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_get_params_set_params_round_trip(name: str) -> None:
    model = _make(name)
    params = model.get_params()  # may be empty (Naive, HistoricAverage take none)
    assert list(params) == model._param_names()

    rebuilt = type(model)(**params)
    assert _same(rebuilt.get_params(), params)

    target = type(model)()
    assert target.set_params(**params) is target
    assert _same(target.get_params(), params)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_unknown_parameters_are_rejected(name: str) -> None:
    model = _make(name)
    with pytest.raises(ValueError, match="no_such_param"):
        model.set_params(no_such_param=1)
    with pytest.raises(TypeError, match="no_such_param"):
        type(model)(no_such_param=1)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_clone_is_an_unfitted_copy_with_equal_params(name: str) -> None:
    fitted = _fitted(name)
    assert _is_fitted(fitted)

    copy = fitted.clone()
    assert type(copy) is type(fitted)
    assert copy is not fitted
    assert not _is_fitted(copy)
    assert _same(copy.get_params(), fitted.get_params())
    with pytest.raises(NotFittedError):
        copy.predict(H)
    # the original is still fitted
    assert fitted.predict(H).point.shape == (H,)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_tags_are_declared_as_data(name: str) -> None:
    model_class = BUILTIN_MODELS[name]
    tags = model_class.get_tags()
    assert set(model_class.tags) <= set(DEFAULT_TAGS)
    assert tags["scope"] == "local"
    assert isinstance(tags["native_quantiles"], bool)
    assert int(tags["min_history"]) >= 1
    assert tags["demand_types"] and set(tags["demand_types"]) <= {"smooth", "intermittent"}


# --- fit ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_fit_returns_self_and_does_not_mutate_its_input(name: str) -> None:
    model = _make(name)
    y = _series()
    before = y.copy()
    params_before = model.get_params()

    assert model.fit(y) is model

    np.testing.assert_array_equal(y, before)
    assert model.n_obs_ == y.size
    assert _same(model.get_params(), params_before), "fit must not change the parameters"


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_predict_before_fit_raises_not_fitted(name: str) -> None:
    with pytest.raises(NotFittedError, match="not fitted"):
        _make(name).predict(H)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_too_short_history_raises_typed_error(name: str) -> None:
    model = _make(name)
    needed = model.min_history(SEASON)
    assert needed >= 1
    # below the minimum (for min_history == 1 that is the empty series)
    with pytest.raises(HistoryTooShortError, match=f"at least {needed}"):
        model.fit(_series()[: needed - 1])


def test_models_with_a_real_minimum_history_are_covered() -> None:
    """The too-short check is not vacuous: these declare more than one observation."""
    needed = {name: _make(name).min_history(SEASON) for name in MODEL_NAMES}
    assert {name for name, n in needed.items() if n > 1} >= {
        "AutoARIMA",
        "AutoETS",
        "AutoTheta",
        "AutoCES",
        "SeasonalNaive",
        "RandomWalkWithDrift",
        "MSTL",
        "WindowAverage",
    }
    assert needed["SeasonalNaive"] == SEASON
    assert needed["MSTL"] == 2 * SEASON
    assert needed["WindowAverage"] == 13


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_fit_at_exactly_min_history_works(name: str) -> None:
    """The declared minimum is honest: at it the model fits and forecasts finitely."""
    model = _make(name)
    needed = model.min_history(SEASON)
    forecast = model.fit(_series()[:needed]).predict(H, QUANTILES)
    assert np.all(np.isfinite(forecast.point))
    assert all(np.all(np.isfinite(values)) for values in forecast.quantiles.values())


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_raises_value_error(name: str, bad: float) -> None:
    y = _series()
    y[5] = bad
    with pytest.raises(ValueError, match="non-finite"):
        _make(name).fit(y)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_two_dimensional_input_raises_value_error(name: str) -> None:
    with pytest.raises(ValueError, match="1-D"):
        _make(name).fit(_series().reshape(-1, 2))


# --- predict ------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("h", [1, H])
def test_predict_returns_h_finite_points(name: str, h: int) -> None:
    forecast = _fitted(name).predict(h)
    assert isinstance(forecast, Forecast)
    assert forecast.point.shape == (h,)
    assert forecast.point.dtype == np.float64
    assert np.all(np.isfinite(forecast.point))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_predict_rejects_non_positive_horizon(name: str) -> None:
    with pytest.raises(ValueError, match="horizon"):
        _fitted(name).predict(0)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_quantiles_native_complete_and_monotone_or_left_to_the_framework(name: str) -> None:
    model = _fitted(name)
    forecast = model.predict(H, QUANTILES)
    if not model.get_tag("native_quantiles"):
        # no native quantiles: the model returns none, conformal adds them (test_conformal.py)
        assert forecast.quantiles == {}
        return
    assert set(forecast.quantiles) == set(QUANTILES)
    matrix = np.vstack([forecast.quantiles[q] for q in QUANTILES])
    assert matrix.shape == (len(QUANTILES), H)
    assert np.all(np.isfinite(matrix))
    assert np.all(np.diff(matrix, axis=0) >= -1e-9), "native quantiles cross"
    np.testing.assert_allclose(forecast.quantiles[0.5], forecast.point)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_fit_is_idempotent_and_deterministic(name: str) -> None:
    y = _series()
    model = _make(name)
    first = model.fit(y).predict(H, QUANTILES)
    second = model.fit(y).predict(H, QUANTILES)
    _assert_same_forecast(first, second)
    # a different instance with the same parameters gives the same forecast
    _assert_same_forecast(first, _fitted(name).predict(H, QUANTILES))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_pickle_round_trip_predicts_the_same(name: str) -> None:
    fitted = _fitted(name)
    restored = pickle.loads(pickle.dumps(fitted))
    assert type(restored) is type(fitted)
    assert _same(restored.get_params(), fitted.get_params())
    _assert_same_forecast(restored.predict(H, QUANTILES), fitted.predict(H, QUANTILES))


def test_mstl_accepts_several_season_lengths() -> None:
    """MSTL's season_length may be a list: it needs two cycles of the shortest and keeps the cycles the history holds twice."""
    t = np.arange(60)
    y = 10 + np.sin(2 * np.pi * t / 4) + np.sin(2 * np.pi * t / 12)
    model = MSTL(season_length=[4, 12])
    with pytest.raises(HistoryTooShortError, match="at least 8"):
        model.fit(y[:7])
    short = MSTL(season_length=[4, 12]).fit(y[:20])
    assert list(np.atleast_1d(short.model_.season_length)) == [4]  # 20 points hold the 12-cycle less than twice
    forecast = model.fit(y).predict(H)
    assert model.model_.season_length == [4, 12]
    assert forecast.point.shape == (H,)
    assert np.all(np.isfinite(forecast.point))


def test_mstl_is_a_candidate_only_with_several_seasonalities() -> None:
    from forecasting.config import Settings
    from forecasting.training.plan import TrainingPlan

    hourly = TrainingPlan.from_settings(Settings(forecast={"freq": "h", "horizon": 24}))
    weekly = TrainingPlan.from_settings(Settings())
    mstl_hourly = next(c for c in hourly.candidates if c.label == "MSTL")
    mstl_weekly = next(c for c in weekly.candidates if c.label == "MSTL")
    assert mstl_hourly.model.season_length == [24, 168]
    assert hourly.eligible(mstl_hourly, "smooth", 2000)
    assert not weekly.eligible(mstl_weekly, "smooth", 2000)
    assert hourly.history_cap == 4 * 168  # a few cycles of the longest seasonality, not of the day


# --- interval levels ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "level"),
    [
        (0.1, 80),
        (0.9, 80),
        (0.05, 90),
        (0.95, 90),
        (0.025, 95),
        (0.975, 95),
        (0.25, 50),
        (0.005, 99),
    ],
)
def test_interval_level(q: float, level: int) -> None:
    assert interval_level(q) == level
    assert isinstance(interval_level(q), int)


def test_interval_level_keeps_non_integer_levels() -> None:
    assert interval_level(0.333) == pytest.approx(33.4)
    assert isinstance(interval_level(0.333), float)


def test_quantiles_from_intervals_maps_bounds_to_quantiles() -> None:
    result = {
        "mean": np.array([10.0, 11.0]),
        "lo-80": np.array([8.0, 8.5]),
        "hi-80": np.array([12.0, 13.5]),
        "lo-90": np.array([7.0, 7.5]),
        "hi-90": np.array([13.0, 14.5]),
        "lo-95": np.array([6.0, 6.5]),
    }
    out = quantiles_from_intervals(result, (0.1, 0.9, 0.05, 0.025, 0.5))
    assert list(out) == [0.1, 0.9, 0.05, 0.025, 0.5]
    np.testing.assert_array_equal(out[0.1], result["lo-80"])
    np.testing.assert_array_equal(out[0.9], result["hi-80"])
    np.testing.assert_array_equal(out[0.05], result["lo-90"])
    np.testing.assert_array_equal(out[0.025], result["lo-95"])
    np.testing.assert_array_equal(out[0.5], result["mean"])
    assert all(values.dtype == np.float64 for values in out.values())


def test_quantiles_from_intervals_missing_bound_raises() -> None:
    with pytest.raises(KeyError, match="hi-95"):
        quantiles_from_intervals({"mean": np.zeros(2)}, (0.975,))


# --- catalog ------------------------------------------------------------------------


def test_available_models_include_every_builtin() -> None:
    models = available_models()
    for name, model_class in BUILTIN_MODELS.items():
        assert models[name] is model_class


@pytest.mark.parametrize("name", ["SeasonalNaive", "AutoETS", "AutoARIMA"])
def test_build_model_fills_season_length(name: str) -> None:
    assert build_model(name, {}, 12).season_length == 12


def test_build_model_gives_a_multi_seasonal_model_every_cycle() -> None:
    assert build_model("MSTL", {}, 24, (24, 168)).season_length == [24, 168]
    assert build_model("MSTL", {}, 12).season_length == [12]
    assert build_model("AutoETS", {}, 24, (24, 168)).season_length == 24


def test_build_model_keeps_an_explicit_season_length_and_other_params() -> None:
    model = build_model("SeasonalNaive", {"season_length": 7}, 12)
    assert model.season_length == 7
    assert build_model("WindowAverage", {"window_size": 5}, 12).window_size == 5


def test_build_model_does_not_invent_season_length() -> None:
    model = build_model("Naive", {}, 12)
    assert "season_length" not in model.get_params()
    assert not hasattr(model, "season_length")


def test_build_model_does_not_mutate_params() -> None:
    params = {"window_size": 5}
    build_model("WindowAverage", params, 12)
    assert params == {"window_size": 5}


def test_unknown_model_lists_available_names() -> None:
    with pytest.raises(UnknownModelError) as info:
        build_model("NoSuchModel", {}, 12)
    message = str(info.value)
    assert "'NoSuchModel'" in message
    for name in BUILTIN_MODELS:
        assert name in message
    assert isinstance(info.value, KeyError)
