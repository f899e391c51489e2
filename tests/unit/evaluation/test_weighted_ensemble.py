"""Weighted combinations of quantile forecasts and the text form of their weights."""

from __future__ import annotations

import numpy as np

from forecasting.evaluation.weighted_ensemble import combine, format_weights, parse_weights


def test_the_text_form_of_weights_round_trips():
    weights = {"AutoETS": 0.6, "Naive": 0.25, "SeasonalMovingAverage": 0.15}
    assert format_weights(weights) == "AutoETS:0.6,Naive:0.25,SeasonalMovingAverage:0.15"
    assert parse_weights(format_weights(weights)) == weights
    assert parse_weights("") == {}


def test_a_weighted_combination_is_the_quantile_wise_weighted_mean():
    a = {0.1: np.array([0.0, 1.0]), 0.9: np.array([2.0, 3.0])}
    b = {0.1: np.array([4.0, 5.0]), 0.9: np.array([6.0, 7.0])}
    combined = combine({"a": a, "b": b}, {"a": 0.75, "b": 0.25})
    np.testing.assert_allclose(combined[0.1], [1.0, 2.0])
    np.testing.assert_allclose(combined[0.9], [3.0, 4.0])
