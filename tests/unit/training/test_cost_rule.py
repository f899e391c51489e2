"""Cost rule: an expensive candidate clearly beaten in the first window is not backtested further."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from forecasting.models.statsforecast_models import HistoricAverage, Naive
from forecasting.training.plan import Candidate, TrainingPlan
from forecasting.training.selection_step import ShardResult, train_batch

H = 6
Y = 100 + 2.0 * np.arange(80)  # a trend: the historic average is far off, the naive close
HISTORY = pd.DataFrame({"unique_id": "s", "ds": pd.date_range("2020-01-05", periods=Y.size, freq="W-SUN"), "y": Y})
LIFECYCLE = pd.DataFrame({"unique_id": ["s"], "lifecycle": ["smooth"], "demand_class": ["smooth"]})
N_WINDOWS = 3  # the latest two are scored forward-only


class SlowMean(HistoricAverage):  # type: ignore[misc, valid-type]
    tags = {**HistoricAverage.tags, "expensive": True}
    fits = 0

    def _fit(self, y: np.ndarray, X: np.ndarray | None) -> None:
        SlowMean.fits += 1
        super()._fit(y, X)


def _plan(margin: float | None) -> TrainingPlan:
    return TrainingPlan(
        horizon=H, quantiles=(0.1, 0.5, 0.9), season_length=1, n_windows=N_WINDOWS, step=H, history_cap=1000,
        fit_time_limit=30.0, conformal_windows=2, explosion_factor=10.0,
        candidates=(Candidate("SlowMean", SlowMean()), Candidate("Naive", Naive())), fallbacks=(),
        skip_expensive_margin=margin,
    )


def _run(plan: TrainingPlan) -> tuple[dict, ShardResult, int]:
    SlowMean.fits = 0
    result = train_batch(HISTORY, LIFECYCLE, plan, "W-SUN")
    return result.ledger.iloc[0].to_dict(), result, SlowMean.fits


def test_a_clearly_beaten_expensive_candidate_is_skipped_after_its_first_window():
    ledger, result, fits = _run(_plan(0.5))
    assert ledger["cost_skipped"] == "SlowMean" and ledger["ensemble_members"] == "Naive:1"
    assert set(result.scores["candidate"]) == {"Naive", "Ensemble"}
    assert "SlowMean" not in set(result.candidates["candidate"])  # no forecast of the future either
    assert fits == 1  # the first window only


def test_without_the_rule_or_within_the_margin_every_window_is_backtested():
    for plan, expected_fits in ((_plan(None), N_WINDOWS + 1), (replace(_plan(0.5), skip_expensive_margin=1000.0), N_WINDOWS + 2)):
        ledger, result, fits = _run(plan)
        assert ledger["cost_skipped"] == ""
        assert (result.scores["candidate"] == "SlowMean").sum() == N_WINDOWS - 1
        assert "SlowMean" in set(result.candidates["candidate"])
        assert fits == expected_fits  # every window and the future (under the rule: the first window once more)


def test_where_every_member_of_the_ensemble_was_skipped_the_best_single_is_the_choice_not_a_fallback():
    # four flat series: the pooled ensemble rests on the mean alone; on the trend it is skipped
    rng = np.random.default_rng(0)
    flat = [pd.DataFrame({"unique_id": f"flat{k}", "ds": HISTORY["ds"], "y": 100 + rng.normal(0, 10, Y.size)}) for k in range(4)]
    history = pd.concat([HISTORY, *flat], ignore_index=True)
    lifecycle = pd.DataFrame({"unique_id": history["unique_id"].unique(), "lifecycle": "smooth", "demand_class": "smooth"})
    ledger = train_batch(history, lifecycle, _plan(0.5), "W-SUN").ledger.set_index("unique_id")
    assert set(ledger.loc[[f"flat{k}" for k in range(4)], "ensemble_members"]) == {"SlowMean:1"}
    trend = ledger.loc["s"]
    assert trend["cost_skipped"] == "SlowMean"
    assert (trend["status"], trend["winner"], trend["model"]) == ("ok", "Naive", "Naive")
    assert trend["selection"].startswith("best single: the cost rule skipped the ensemble's members")
