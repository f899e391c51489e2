"""Greedy weighted ensemble: weights, determinism, and cross-fitted scoring."""

from __future__ import annotations

import numpy as np

from forecasting.evaluation.weighted_ensemble import combine, cross_fitted, greedy_weights

Q = (0.1, 0.5, 0.9)
H = 5


def _forecast(level: float) -> dict[float, np.ndarray]:
    return {q: np.full(H, level + (q - 0.5) * 4) for q in Q}


ACTUALS = [np.full(H, 10.0), np.full(H, 20.0), np.full(H, 30.0)]
SCALES = [1.0, 1.0, 1.0]


def test_two_opposite_biases_are_averaged_and_a_useless_candidate_gets_no_weight():
    forecasts = {
        "high": [_forecast(a[0] + 3) for a in ACTUALS],
        "low": [_forecast(a[0] - 3) for a in ACTUALS],
        "far": [_forecast(a[0] + 50) for a in ACTUALS],
    }
    weights = greedy_weights(forecasts, ACTUALS, SCALES, [0, 1, 2], rounds=10)
    assert weights == {"high": 0.5, "low": 0.5}
    np.testing.assert_allclose(combine({k: forecasts[k][0] for k in weights}, weights)[0.5], ACTUALS[0])


def test_a_window_is_scored_with_weights_chosen_on_the_other_windows_only():
    forecasts = {
        "a": [_forecast(a[0] + 1) for a in ACTUALS],
        "b": [_forecast(a[0] - 2) for a in ACTUALS],
    }
    per_window, _ = cross_fitted(forecasts, ACTUALS, SCALES, rounds=6)
    changed = [ACTUALS[0] - 100.0, ACTUALS[1], ACTUALS[2]]  # window 0's truth now favours "b"
    again, final = cross_fitted(forecasts, changed, SCALES, rounds=6)
    np.testing.assert_array_equal(per_window[0][0.5], again[0][0.5])
    assert not np.array_equal(per_window[1][0.5], again[1][0.5])
    assert abs(sum(final.values()) - 1.0) < 1e-12


def test_ties_go_to_the_first_candidate():
    same = [_forecast(a[0]) for a in ACTUALS]
    assert greedy_weights({"first": same, "second": same}, ACTUALS, SCALES, [0, 1], rounds=4) == {"first": 1.0}


def test_the_text_form_of_weights_round_trips():
    from forecasting.evaluation.weighted_ensemble import format_weights, parse_weights

    weights = {"AutoETS": 0.6, "Naive": 0.25, "SeasonalMovingAverage": 0.15}
    assert format_weights(weights) == "AutoETS:0.6,Naive:0.25,SeasonalMovingAverage:0.15"
    assert parse_weights(format_weights(weights)) == weights
    assert parse_weights("") == {}
