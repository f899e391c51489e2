"""Cost rule: an expensive candidate clearly beaten in the first window is not backtested further."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from forecasting.models.statsforecast_models import HistoricAverage, Naive
from forecasting.training.plan import Candidate, TrainingPlan
from forecasting.training.series import train_series

H = 6
Y = 100 + 2.0 * np.arange(80)  # a trend: the historic average is far off, the naive close
DS = pd.date_range("2020-01-05", periods=Y.size, freq="W-SUN").to_numpy()


class SlowMean(HistoricAverage):  # type: ignore[misc, valid-type]
    tags = {**HistoricAverage.tags, "expensive": True}
    fits = 0

    def _fit(self, y: np.ndarray, X: np.ndarray | None) -> None:
        SlowMean.fits += 1
        super()._fit(y, X)


def _plan(margin: float | None) -> TrainingPlan:
    return TrainingPlan(
        horizon=H, quantiles=(0.1, 0.5, 0.9), season_length=1, n_windows=3, step=H, history_cap=1000,
        fit_time_limit=30.0, conformal_windows=2, ensemble_top_k=0, explosion_factor=10.0,
        candidates=(Candidate("SlowMean", SlowMean()), Candidate("Naive", Naive())), fallbacks=(),
        skip_expensive_margin=margin,
    )


def _run(plan: TrainingPlan) -> tuple[dict, list[dict], int]:
    SlowMean.fits = 0
    result = train_series("s", DS, Y, "smooth", plan)
    return result.ledger, result.scores, SlowMean.fits


def test_a_clearly_beaten_expensive_candidate_is_skipped_after_its_first_window():
    ledger, scores, fits = _run(_plan(0.5))
    assert ledger["cost_skipped"] == "SlowMean" and ledger["model"] == "Naive"
    assert {s["candidate"] for s in scores} == {"Naive"}
    assert fits == 1


def test_without_the_rule_or_within_the_margin_every_window_is_backtested():
    for plan in (_plan(None), replace(_plan(0.5), skip_expensive_margin=1000.0)):
        ledger, scores, fits = _run(plan)
        assert ledger["cost_skipped"] == ""
        assert sum(s["candidate"] == "SlowMean" for s in scores) == 3
        assert fits == 3
