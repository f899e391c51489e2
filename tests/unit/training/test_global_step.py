"""The global step: LightGBM fitted across series per backtest cutoff, with no look-ahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting.data.covariates import Covariates
from forecasting.models.lightgbm_global import LightGBMGlobal
from forecasting.training.global_step import outcomes_frame, outcomes_from_frame, train_global
from forecasting.training.isolation import IsolatedFailure
from forecasting.training.plan import Candidate, TrainingPlan
from forecasting.training.selection_step import train_batch

H, N_SERIES, N_OBS = 4, 6, 60
QUANTILES = (0.1, 0.5, 0.9)
CHEAP = {"n_estimators": 15, "num_leaves": 7, "min_child_samples": 5, "n_lags": 4, "season_length": 12}


def _panel(n_obs: int = N_OBS, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(N_SERIES):
        t = np.arange(n_obs - i)  # ragged ends: series i is i observations shorter
        y = 50 + 10 * i + 8 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 1, t.size)
        ds = pd.date_range("2020-01-05", periods=t.size, freq="W-SUN")
        frames.append(pd.DataFrame({"unique_id": f"s{i}", "ds": ds, "y": y}))
    return pd.concat(frames, ignore_index=True)


def _plan(**params: object) -> TrainingPlan:
    return TrainingPlan(
        horizon=H, quantiles=QUANTILES, season_length=12, n_windows=2, step=H, history_cap=1000,
        fit_time_limit=30.0, conformal_windows=2, explosion_factor=10.0,
        candidates=(Candidate("LightGBM", LightGBMGlobal(**{**CHEAP, **params})),),
        fallbacks=(), ensemble=False,
    )


CLASSES = {f"s{i}": "smooth" for i in range(N_SERIES)}
LIFECYCLE = pd.DataFrame({"unique_id": list(CLASSES), "lifecycle": "smooth", "demand_class": list(CLASSES.values())})


def test_forecasts_for_every_window_and_the_future_non_crossing_and_reproducible():
    panel, plan = _panel(), _plan()
    first = train_global(panel, CLASSES, plan, "W-SUN")
    again = train_global(panel, CLASSES, plan, "W-SUN")
    for uid, part in panel.groupby("unique_id"):
        n = len(part)
        lengths = [w.train_end for w in plan.windows(n)] + [n]
        assert len(lengths) == 3
        outcomes = first.outcomes[uid]["LightGBM"]
        assert sorted(outcomes) == lengths
        for length in lengths:
            forecast = outcomes[length]
            assert not isinstance(forecast, IsolatedFailure)
            assert np.isfinite(forecast[0.5]).all()  # a recursive median: the other quantiles are calibrated
            assert np.isnan(forecast[0.1]).all() and np.isnan(forecast[0.9]).all()
            np.testing.assert_array_equal(forecast[0.5], again.outcomes[uid]["LightGBM"][length][0.5])


def test_its_quantiles_are_calibrated_around_the_recursive_median_and_stay_sane_over_the_horizon():
    panel, plan = _panel(), _plan()
    outcomes = train_global(panel, CLASSES, plan, "W-SUN").outcomes
    result = train_batch(panel, LIFECYCLE, plan, "W-SUN", precomputed=outcomes)
    published = result.forecasts.sort_values(["unique_id", "horizon"])
    values = published[["p10", "p50", "p90"]].to_numpy()
    assert np.isfinite(values).all() and (np.diff(values, axis=1) >= 0).all()
    width = (published["p90"] - published["p10"]).to_numpy().reshape(N_SERIES, H)
    assert (width > 0).all()
    assert np.median(width[:, -1] / width[:, 0]) < 4.0  # no blow-up from quantile boosters fed their own forecasts


def test_backtest_forecasts_do_not_see_the_data_after_their_cutoff():
    panel, plan = _panel(), _plan()
    changed = panel.copy()
    last = changed.groupby("unique_id").cumcount(ascending=False) < 2 * H - H  # only the last window's test data
    changed.loc[last, "y"] *= 5.0
    before = train_global(panel, CLASSES, plan, "W-SUN").outcomes
    after = train_global(changed, CLASSES, plan, "W-SUN").outcomes
    for uid, part in panel.groupby("unique_id"):
        first_window = plan.windows(len(part))[0].train_end
        np.testing.assert_array_equal(before[uid]["LightGBM"][first_window][0.5], after[uid]["LightGBM"][first_window][0.5])
        assert not np.array_equal(before[uid]["LightGBM"][len(part)][0.5], after[uid]["LightGBM"][len(part)][0.5])


def test_outcomes_survive_the_round_trip_to_a_frame():
    panel, plan = _panel(), _plan()
    outcomes = train_global(panel, CLASSES, plan, "W-SUN").outcomes
    outcomes["s0"]["LightGBM"][7] = IsolatedFailure("exception", "boom")
    back = outcomes_from_frame(outcomes_frame(outcomes, QUANTILES), QUANTILES)
    assert back["s0"]["LightGBM"][7] == IsolatedFailure("exception", "boom")
    np.testing.assert_array_equal(back["s1"]["LightGBM"][N_OBS - 1][0.9], outcomes["s1"]["LightGBM"][N_OBS - 1][0.9])


def test_a_failing_global_fit_costs_the_series_that_candidate_only():
    panel, plan = _panel(), _plan(target_transform="no-such-transform")
    global_result = train_global(panel, CLASSES, plan, "W-SUN")
    plan_with_naive = _plan(target_transform="no-such-transform")
    from forecasting.models.statsforecast_models import BUILTIN_MODELS

    plan_with_naive = TrainingPlan(**{**plan.__dict__, "candidates": (*plan.candidates, Candidate("Naive", BUILTIN_MODELS["Naive"]()))})
    result = train_batch(panel, LIFECYCLE, plan_with_naive, "W-SUN", precomputed=global_result.outcomes)
    assert (result.ledger["model"] == "Naive").all() and (result.ledger["status"] == "ok").all()
    assert result.ledger["failures"].str.contains("LightGBM cutoff").all()
    assert result.ledger["failures"].str.contains("LightGBM future").all()


def test_the_global_candidate_competes_in_the_per_series_leaderboard():
    panel, plan = _panel(), _plan()
    global_result = train_global(panel, CLASSES, plan, "W-SUN")
    result = train_batch(panel, LIFECYCLE, plan, "W-SUN", precomputed=global_result.outcomes)
    assert set(result.scores["candidate"]) == {"LightGBM"}
    assert (result.ledger["status"] == "ok").all() and (result.ledger["model"] == "LightGBM").all()
    s0 = result.forecasts[result.forecasts["unique_id"] == "s0"]
    np.testing.assert_allclose(s0["p50"].to_numpy(), global_result.outcomes["s0"]["LightGBM"][N_OBS][0.5])


def test_tuning_is_bounded_seeded_and_recorded():
    panel, plan = _panel(), _plan()
    first = train_global(panel, CLASSES, plan, "W-SUN", n_trials=3, seed=1)
    again = train_global(panel, CLASSES, plan, "W-SUN", n_trials=3, seed=1)
    info = first.info["LightGBM"]
    assert info["n_trials"] == 3 and "tuning_error" not in info
    assert info["tuning_loss"] <= info["configured_loss"]
    assert info["params"] == again.info["LightGBM"]["params"]
    np.testing.assert_array_equal(first.outcomes["s0"]["LightGBM"][N_OBS][0.5], again.outcomes["s0"]["LightGBM"][N_OBS][0.5])


def test_covariates_are_used_when_given():
    panel, plan = _panel(), _plan()
    dates = pd.date_range("2020-01-05", periods=N_OBS + H, freq="W-SUN")
    promo = pd.DataFrame([{"unique_id": f"s{i}", "ds": d, "promo": float(j % 5 == 0)} for i in range(N_SERIES) for j, d in enumerate(dates)])
    boosted = panel.merge(promo, on=["unique_id", "ds"])
    boosted["y"] += 40 * boosted["promo"]
    static = pd.DataFrame({"unique_id": list(CLASSES), "size": np.arange(N_SERIES, dtype=float)})
    with_x = train_global(boosted[["unique_id", "ds", "y"]], CLASSES, plan, "W-SUN", Covariates(promo, static))
    without = train_global(boosted[["unique_id", "ds", "y"]], CLASSES, plan, "W-SUN")
    future_promo = promo[(promo["unique_id"] == "s0") & (promo["ds"] > panel[panel["unique_id"] == "s0"]["ds"].max())]["promo"].to_numpy()
    forecast = with_x.outcomes["s0"]["LightGBM"][N_OBS][0.5]
    assert forecast[future_promo == 1].mean() > forecast[future_promo == 0].mean() + 15
    assert not np.allclose(forecast, without.outcomes["s0"]["LightGBM"][N_OBS][0.5])


@pytest.mark.parametrize("transform", ["standard", "difference", "none"])
def test_every_target_transform_fits(transform: str):
    model = LightGBMGlobal(**{**CHEAP, "target_transform": transform}).fit_panel(_panel(), "W-SUN", QUANTILES)
    assert model.predict_panel(H).shape == (N_SERIES * H, 3)  # unique_id, ds, the median


def test_the_local_contract_fits_a_panel_of_one_series_and_the_model_is_a_builtin():
    from forecasting.models.catalog import build_model, is_builtin

    y = _panel()[lambda f: f["unique_id"] == "s0"]["y"].to_numpy()
    forecast = LightGBMGlobal(**CHEAP).fit(y).predict(H, QUANTILES)
    assert forecast.point.shape == (H,) and forecast.quantiles == {}  # no native quantiles
    model = build_model("LightGBM", {}, season_length=52)
    assert is_builtin(type(model)) and model.season_length == 52 and model.get_tag("scope") == "global"


def test_lightgbm_declares_the_global_interface_and_a_local_model_is_refused():
    from forecasting.models.base import ModelError
    from forecasting.models.catalog import build_model
    from forecasting.models.global_model import GlobalModel, Tunable, as_global, as_tunable

    model = LightGBMGlobal(**CHEAP)
    assert isinstance(model, GlobalModel) and isinstance(model, Tunable)
    assert as_global(model) is model and as_tunable(model) is model
    naive = build_model("Naive", {}, season_length=1)
    with pytest.raises(ModelError, match="Naive is tagged global but has no fit_panel"):
        as_global(naive)
    with pytest.raises(ModelError, match="Naive cannot be tuned"):
        as_tunable(naive)


def test_the_local_contract_lays_its_history_on_the_calendar_of_its_frequency():
    """A history without dates: weekly Sundays by default (as before), the run's frequency when built for one."""
    from forecasting.models.catalog import build_model, instantiate

    y = _panel()[lambda f: f["unique_id"] == "s0"]["y"].to_numpy()
    sundays = pd.DataFrame({"unique_id": "series", "ds": pd.date_range("2000-01-02", periods=y.size, freq="W-SUN"), "y": y})
    expected = LightGBMGlobal(**CHEAP).fit_panel(sundays, "W-SUN").predict_panel(H)[0.5].to_numpy()
    np.testing.assert_array_equal(LightGBMGlobal(**CHEAP).fit(y).predict(H).point, expected)
    assert build_model("LightGBM", {}, season_length=52).freq == "W-SUN"
    assert instantiate(LightGBMGlobal, dict(CHEAP), season_length=12, freq="W-FRI").get_params()["freq"] == "W-FRI"
    fridays = LightGBMGlobal(**CHEAP, freq="W-FRI").fit(y)
    assert isinstance(fridays, LightGBMGlobal) and fridays._local["ds"].dt.dayofweek.eq(4).all()
