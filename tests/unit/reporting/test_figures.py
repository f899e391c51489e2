"""Report figures from small hand-made ledgers and leaderboards, checked by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting.reporting.figures import (
    changed_winners,
    collect_figures,
    coverage,
    model_counts,
    reason_counts,
)
from forecasting.reporting.sampling import CHANGED, FALLBACK, LARGEST, WORST, choose_samples

LEDGER = pd.DataFrame(
    {
        "unique_id": ["a", "b", "c", "d", "e", "f"],
        "status": ["ok", "ok", "fallback", "quarantined", "quarantined", "new"],
        "reason": ["", "", "quality_gate", "non_finite_values", "non_finite_values", "short_history"],
        "winner": ["ETS", "Naive", "ETS", "", "", ""],
        "model": ["ETS", "Naive", "Naive", "", "", "Naive"],
    }
)
BOARD = pd.DataFrame(
    {
        "unique_id": ["a", "a", "b", "b", "c", "c"],
        "candidate": ["ETS", "Naive", "Naive", "ETS", "ETS", "Naive"],
        "scaled_quantile_loss": [0.5, 1.0, 0.8, 0.9, 0.6, 0.4 + 0.8],
        "coverage": [0.8, 0.7, 0.9, 0.6, 0.5, 0.4],
        "is_winner": [True, False, True, False, True, False],
        "rank": [1, 2, 1, 2, 1, 2],
    }
)


def test_reasons_and_models_are_counted_from_the_ledger():
    assert [(r.reason, r.n_series, r.examples) for r in reason_counts(LEDGER, "quarantined")] == [
        ("non_finite_values", 2, ["d", "e"])
    ]
    assert [(r.reason, r.n_series) for r in reason_counts(LEDGER, "fallback")] == [("quality_gate", 1)]
    models = {m.model: (m.winner, m.published) for m in model_counts(LEDGER)}
    assert models == {"ETS": (2, 1), "Naive": (1, 3)}


def test_loss_against_naive_is_per_series_on_the_common_series():
    figures = collect_figures("r", "2025-12-28", LEDGER, BOARD, [0.1, 0.5, 0.9])
    naive = figures.vs_naive
    assert naive.series_compared == 3
    assert naive.mean_loss == pytest.approx((0.5 + 0.8 + 0.6) / 3)
    assert naive.reference_mean_loss == pytest.approx((1.0 + 0.8 + 1.2) / 3)
    assert naive.share_better == pytest.approx(2 / 3)  # b's winner is Naive itself: not better
    assert naive.ratio_quantiles["p50"] == pytest.approx(0.5)
    assert figures.counts == {"fallback": 1, "new": 1, "ok": 2, "quarantined": 2}


def test_previous_run_comparison_counts_changed_winners():
    previous_ledger = LEDGER.assign(winner=["ETS", "ETS", "Naive", "", "", ""])
    previous_board = BOARD.assign(scaled_quantile_loss=BOARD["scaled_quantile_loss"] * 2)
    figures = collect_figures("r", "2025-12-28", LEDGER, BOARD, [0.1, 0.5, 0.9], previous=("p", previous_ledger, previous_board))
    assert list(changed_winners(LEDGER, previous_ledger)) == ["b", "c"]
    assert figures.vs_previous.winner_changed == 2
    assert figures.vs_previous.share_better == 1.0
    assert figures.vs_previous.ratio_quantiles["p50"] == pytest.approx(0.5)


def test_coverage_per_series_and_by_horizon():
    backtest = pd.DataFrame(
        {
            "unique_id": ["a"] * 4 + ["a"] * 2,
            "candidate": ["ETS"] * 4 + ["Naive"] * 2,
            "cutoff": pd.to_datetime(["2025-01-05"] * 2 + ["2025-01-12"] * 2 + ["2025-01-05"] * 2),
            "ds": pd.to_datetime(["2025-01-19", "2025-01-12", "2025-01-19", "2025-01-26", "2025-01-12", "2025-01-19"]),
            "y": [5.0, 5.0, 5.0, 50.0, 5.0, 5.0],
            "p10": [1.0, 1.0, 1.0, 1.0, 9.0, 9.0],
            "p90": [9.0, 4.0, 9.0, 9.0, 10.0, 10.0],
        }
    )
    c = coverage(BOARD, backtest, [0.1, 0.5, 0.9])
    assert c.nominal == pytest.approx(0.8)
    assert c.mean == pytest.approx((0.8 + 0.9 + 0.5) / 3)
    assert c.share_within_10pp == pytest.approx(2 / 3)
    # window 1: h1 (01-12) outside, h2 (01-19) inside; window 2: h1 (01-19) inside, h2 (01-26) outside
    assert c.by_horizon == {1: 0.5, 2: 0.5}


def test_samples_are_capped_varied_and_never_quarantined():
    volume = pd.Series({"a": 1.0, "b": 50.0, "c": 3.0, "d": 99.0, "f": 2.0})
    chosen = choose_samples(LEDGER, BOARD, volume, changed=["c"], cap=3)
    # largest drawable (b), worst (b again, so c), changed and fallback (c again), then the next largest new one (f)
    assert list(chosen) == ["b", "c", "f"]
    assert chosen["b"] == [LARGEST, WORST]
    assert chosen["c"][:3] == [WORST, CHANGED, FALLBACK]
    assert "d" not in chosen and len(chosen) == 3
    everything = choose_samples(LEDGER, BOARD, volume, cap=100)
    assert set(everything) == {"a", "b", "c", "f"}
    assert FALLBACK in everything["c"] and LARGEST in everything["b"]


def test_no_backtest_gives_no_comparison():
    empty = BOARD.iloc[0:0]
    figures = collect_figures("r", "2025-12-28", LEDGER, empty, [0.1, 0.5, 0.9])
    assert figures.vs_naive is None and figures.coverage is None
    assert np.isclose(sum(figures.counts.values()), 6)
