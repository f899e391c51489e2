"""Live loss, coverage, the backtest reference at the same horizons, and hysteresis: hand-computed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting.monitoring.live import backtest_losses, judge, live_scores

QUANTILES = [0.1, 0.5, 0.9]
ORIGIN = pd.Timestamp("2025-01-05")


def _history() -> pd.DataFrame:
    # Scale of the history up to the origin: mean |diff| of [10, 12, 10, 12] = 2.
    ds = pd.date_range("2024-12-15", periods=6, freq="W-SUN")
    return pd.DataFrame({"unique_id": "a", "ds": ds, "y": [10.0, 12.0, 10.0, 12.0, 14.0, 20.0]})


def test_live_loss_and_coverage_by_hand() -> None:
    forecasts = pd.DataFrame(
        {
            "unique_id": "a",
            "forecast_origin": ORIGIN,
            "ds": pd.date_range(ORIGIN, periods=4, freq="W-SUN")[1:],
            "p10": [10.0, 10.0, 10.0],
            "p50": [12.0, 12.0, 12.0],
            "p90": [14.0, 14.0, 14.0],
            "run_id": "r",
            "model": "Naive",
        }
    )
    live = live_scores(forecasts, _history(), QUANTILES).iloc[0]
    # Two weeks arrived (y = 14, 20); the third has not.
    assert live["n_weeks"] == 2
    # pinball: y=14: q.1 0.4, q.5 1.0, q.9 0.0; y=20: q.1 1.0, q.5 4.0, q.9 5.4
    # mean per quantile: 0.7, 2.5, 2.7 -> mean 1.9667; x2 / scale 2 = 1.9667
    assert live["live_loss"] == pytest.approx((0.7 + 2.5 + 2.7) / 3)
    assert live["coverage"] == pytest.approx(0.5)


def test_backtest_reference_uses_the_published_model_and_the_same_horizons() -> None:
    cutoff = pd.Timestamp("2024-12-22")  # history up to it: [10, 12] -> scale 2
    ds = pd.date_range(cutoff, periods=3, freq="W-SUN")[1:]
    rows = []
    for candidate, level in (("Naive", 10.0), ("Other", 0.0)):
        rows.append(pd.DataFrame({"unique_id": "a", "candidate": candidate, "cutoff": cutoff, "ds": ds,
                                  "y": [10.0, 12.0], "p10": level, "p50": level, "p90": level}))
    backtest = pd.concat(rows, ignore_index=True)
    one = backtest_losses(backtest, _history(), pd.Series({"a": "Naive"}), pd.Series({"a": 1}), QUANTILES)
    two = backtest_losses(backtest, _history(), pd.Series({"a": "Naive"}), pd.Series({"a": 2}), QUANTILES)
    assert one["a"] == pytest.approx(0.0)  # horizon 1 only: y=10 forecast 10 exactly
    # horizon 2 adds y=12 vs 10: pinball 0.2, 1.0, 1.8 -> per quantile means 0.1, 0.5, 0.9 -> 0.5
    assert two["a"] == pytest.approx(0.5)
    missing = backtest_losses(backtest, _history(), pd.Series({"a": "Absent"}), pd.Series({"a": 1}), QUANTILES)
    assert np.isnan(missing["a"])


def test_judge_counts_consecutive_degradations_and_resets() -> None:
    scores = pd.DataFrame(
        {
            "unique_id": ["up", "flat", "young", "unknown"],
            "n_weeks": [2, 2, 1, 2],
            "live_loss": [3.0, 0.5, 9.0, 9.0],
            "backtest_loss": [0.5, 0.5, 0.5, np.nan],
        }
    )
    previous = pd.Series({"up": 1, "flat": 3})
    judged = judge(scores, previous, tolerance=5.0, floor=0.1, min_weeks=2).set_index("unique_id")
    assert judged.loc["up", "ratio"] == pytest.approx(6.0)
    assert list(judged["degraded"]) == [True, False, False, False]
    assert list(judged["consecutive"]) == [2, 0, 0, 0]
    assert judged.loc["young", "reason"] == "fewer than 2 weeks of actuals"
    assert judged.loc["unknown", "reason"] == "no backtest of the published model"
    # The floor keeps a near-perfect backtest from making every small miss look degraded.
    floored = judge(scores.assign(backtest_loss=0.001), pd.Series(dtype=int), 5.0, 0.1, 1)
    assert floored.set_index("unique_id").loc["flat", "ratio"] == pytest.approx(5.0)
