"""Move forward or refit: a setting per candidate, falling back to ``backtest.move_forward``."""

from __future__ import annotations

import warnings

import numpy as np

from forecasting.config import load_settings
from forecasting.data.demo import generate_demo_panel
from forecasting.models.catalog import build_model
from forecasting.training.backtest import candidate_forecasts
from forecasting.training.plan import TrainingPlan

QUANTILES = (0.1, 0.5, 0.9)
SEASON = 52


def _plan(candidates: list[dict], move_forward: bool = True) -> TrainingPlan:
    settings = load_settings(overrides={
        "models": {"candidates": candidates}, "backtest": {"move_forward": move_forward},
        "compute": {"executor": "serial", "progress": False},
    })
    return TrainingPlan.from_settings(settings)


def test_a_candidate_s_own_choice_overrides_the_backtest_default() -> None:
    plan = _plan([{"name": "AutoETS"}, {"name": "AutoCES", "move_forward": False}, {"name": "AutoTheta", "move_forward": True}])
    assert [plan.moves_forward(c) for c in plan.candidates] == [True, False, True]
    plan = _plan([{"name": "AutoETS"}, {"name": "AutoTheta", "move_forward": True}], move_forward=False)
    assert [plan.moves_forward(c) for c in plan.candidates] == [False, True]


def test_refit_fits_every_cutoff_afresh_and_forward_moves_the_earliest_fit() -> None:
    warnings.simplefilter("ignore")
    y = generate_demo_panel(n_series=1, n_periods=156, seed=5)["y"].to_numpy(dtype=float)
    model = build_model("AutoETS", {}, SEASON)
    ends = [91, 104, 117]
    refits, _ = candidate_forecasts(model, y, ends, 13, QUANTILES, move_forward=False, future=False)
    moved, _ = candidate_forecasts(model, y, ends, 13, QUANTILES, move_forward=True, future=False)
    for end in ends:
        fresh = model.clone().fit(y[:end]).predict(13, QUANTILES)
        np.testing.assert_allclose(refits[end][0.5], fresh.point)
    first = model.clone().fit(y[:91])
    np.testing.assert_allclose(moved[91][0.5], refits[91][0.5])
    np.testing.assert_allclose(moved[117][0.5], first.forward(y[:117], 13, QUANTILES).point)


def test_a_champion_backtested_with_another_refit_choice_is_not_reused() -> None:
    """The registry reuses a champion's backtest rows only for candidates backtested alike."""
    from forecasting.registry.champion_backtest import shared_labels

    def settings(**backtest: bool):
        return load_settings(overrides={"models": {"candidates": [{"name": "AutoETS"}, {"name": "AutoCES"}]},
                                        "backtest": backtest})

    refit_ces = load_settings(overrides={"models": {"candidates": [
        {"name": "AutoETS"}, {"name": "AutoCES", "move_forward": False}]}})
    assert shared_labels(settings(), settings()) >= {"AutoETS", "AutoCES"}
    assert shared_labels(settings(), refit_ces) == {"AutoETS"}
    assert shared_labels(settings(move_forward=False), refit_ces) == {"AutoCES"}
