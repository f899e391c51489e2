"""The explain verdict from one series' ledger row and leaderboard."""

from __future__ import annotations

import pandas as pd
import pytest

from forecasting.reporting.explain import SeriesExplanation


def _board(winner: str) -> pd.DataFrame:
    return pd.DataFrame({"candidate": ["ETS", "Theta", "Naive"], "scaled_quantile_loss": [0.50, 0.55, 0.90],
                         "rank": [1, 2, 3], "n_windows": [2, 2, 2], "is_winner": [c == winner for c in ("ETS", "Theta", "Naive")]})


def test_margin_over_the_runner_up():
    e = SeriesExplanation("s", "r", {"status": "ok", "winner": "ETS", "model": "ETS"}, _board("ETS"), pd.DataFrame())
    margin = e.margin()
    assert (margin["winner"], margin["runner_up"]) == ("ETS", "Theta")
    assert margin["margin"] == pytest.approx(0.05) and margin["relative_margin"] == pytest.approx(0.05 / 0.55)
    assert e.verdict()[0].startswith("ETS won the backtest") and "0.0500 (9.1%)" in e.verdict()[0]


def test_a_kept_previous_winner_and_the_switching_columns_are_explained():
    ledger = {"status": "ok", "winner": "Theta", "model": "Theta", "previous_winner": "Theta", "switching_margin": "0.1"}
    e = SeriesExplanation("s", "r", ledger, _board("Theta"), pd.DataFrame())
    assert e.margin()["margin"] == pytest.approx(-0.05)
    verdict = e.verdict()
    assert verdict[0].startswith("Theta was kept as the winner") and "ETS scored 0.0500" in verdict[0]
    assert verdict[1] == "Switching margin: previous_winner = Theta; switching_margin = 0.1."


def test_fallback_and_quarantine_say_why():
    fallback = {"status": "fallback", "winner": "ETS", "model": "Naive", "reason": "quality_gate",
                "detail": "quality_gate: ETS: forecast_explosion"}
    verdict = SeriesExplanation("s", "r", fallback, _board("ETS"), pd.DataFrame()).verdict()
    assert "the fallback Naive was" in verdict[-1] and "forecast_explosion" in verdict[-1]
    quarantined = {"status": "quarantined", "reason": "duplicate_timestamps", "detail": "2 duplicated dates"}
    empty = pd.DataFrame(columns=["candidate", "rank", "n_windows"])
    verdict = SeriesExplanation("s", "r", quarantined, empty, pd.DataFrame()).verdict()
    assert verdict[0] == "s was quarantined by input validation: duplicate_timestamps (2 duplicated dates)"


def _backtest(lower: float) -> pd.DataFrame:
    ds = pd.date_range("2024-01-07", periods=3, freq="W-SUN")
    rows = []
    for candidate in ("ETS", "Theta", "Naive"):
        rows.append(pd.DataFrame({"candidate": candidate, "cutoff": pd.Timestamp("2023-12-31"), "ds": ds, "y": 1.0,
                                  "p10": [lower, -0.5, 0.2], "p50": [0.5, -0.1, 1.0], "p90": [2.0, 2.0, 2.0]}))
    return pd.concat(rows, ignore_index=True)


@pytest.mark.parametrize(("history_low", "floored"), [(0.0, True), (-1.0, False)])
def test_fan_bands_start_at_zero_for_a_non_negative_series(history_low: float, floored: bool):
    from forecasting.reporting.explain import _backtest_bands, forecast_chart

    history = pd.DataFrame({"ds": pd.date_range("2023-01-01", periods=5, freq="W-SUN"), "y": [history_low, 1, 2, 3, 1]})
    forecast = pd.DataFrame({"ds": pd.date_range("2024-01-07", periods=2, freq="W-SUN"),
                             "p10": [-0.4, 0.1], "p50": [0.3, 0.5], "p90": [1.0, 1.2]})
    e = SeriesExplanation("s", "r", {"status": "ok", "winner": "ETS", "model": "ETS"}, _board("ETS"), pd.DataFrame(),
                          backtest=_backtest(-2.0), history=history, forecast=forecast)
    bands = _backtest_bands(e, [0.1, 0.5, 0.9])
    lowest = min(float(b.lower.min()) for b in bands)
    lowest_median = min(float(b.median.min()) for b in bands)
    if floored:
        assert lowest == 0.0 and lowest_median == 0.0
    else:
        assert lowest == -2.0 and lowest_median == pytest.approx(-0.1)
    assert forecast_chart(e, [0.1, 0.5, 0.9])[:4] == b"\x89PNG"
