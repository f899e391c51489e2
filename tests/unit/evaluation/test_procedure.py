"""The forward-only selection procedure: nesting (a perturbation test), the evidence rule, the honest estimate."""

from __future__ import annotations

import numpy as np
import pytest

from forecasting.evaluation.pooled_ensemble import combine_members, greedy_weights
from forecasting.evaluation.procedure import (
    ENSEMBLE,
    Pool,
    choose,
    fit_procedure,
    forward_evidence,
    out_of_sample,
    publishable,
)

QUANTILES = (0.1, 0.5, 0.9)
H = 4


def _pool(seed: int = 0, n: int = 30, slots: int = 5, no_window: int = 0) -> Pool:
    """Three candidates (biased low, biased high, noisy) on series with known actuals; slot 0 is the future."""
    rng = np.random.default_rng(seed)
    signal = rng.uniform(50, 150, (n, 1, 1)) + rng.normal(0, 3, (n, slots, H))
    actual = signal + rng.normal(0, 5, (n, slots, H))
    actual[:, 0] = np.nan
    actual[n - no_window:, 1:] = np.nan  # short series: no backtest window at all
    medians = [signal - 4, signal + 4, signal + rng.normal(0, 8, signal.shape)]
    raw = np.stack([np.stack([m - 3, m, m + 3], axis=-1) for m in medians])  # native but too narrow
    raw[2][..., [0, 2]] = np.nan  # the noisy one has no native quantiles
    return Pool(["Low", "High", "Noisy"], raw, actual, np.full((n, slots), 5.0), np.ones((n, slots), bool),
                np.full((n, slots), 0.05), QUANTILES, members=[0, 1, 2], prior=[0, 1])


def test_nothing_after_a_windows_cutoff_changes_its_forecasts() -> None:
    """Perturb every actual known only after window 2's cutoff (windows 1 and 2 themselves): its forecasts stay."""
    pool = _pool()
    before = forward_evidence(pool, lag=1, rounds=10, prior_rounds=2.0)
    perturbed = _pool()
    perturbed.actual[:, 1:3] *= np.random.default_rng(9).uniform(0.2, 3.0, perturbed.actual[:, 1:3].shape)
    after = forward_evidence(perturbed, lag=1, rounds=10, prior_rounds=2.0)
    for label in [*pool.labels, ENSEMBLE]:
        np.testing.assert_array_equal(before.forecasts[label][:, 2], after.forecasts[label][:, 2])
        np.testing.assert_array_equal(before.forecasts[label][:, 3], after.forecasts[label][:, 3])
    # ... while actuals before its cutoff do feed it: the test would see a leak
    earlier = _pool()
    earlier.actual[:, 3:] *= 1.5
    moved = forward_evidence(earlier, lag=1, rounds=10, prior_rounds=2.0)
    assert not np.array_equal(before.forecasts[ENSEMBLE][:, 2], moved.forecasts[ENSEMBLE][:, 2])


def test_the_oldest_window_is_not_scored_and_the_future_uses_every_window() -> None:
    evidence = forward_evidence(_pool(), lag=1, rounds=10, prior_rounds=2.0)
    assert evidence.scored_slots == [1, 2, 3]  # slot 4 has nothing before it
    assert np.isnan(evidence.losses[ENSEMBLE][:, 4]).all()
    assert np.isfinite(evidence.forecasts[ENSEMBLE][:, 0]).all()


def test_a_lag_keeps_overlapping_windows_out() -> None:
    evidence = forward_evidence(_pool(), lag=2, rounds=10, prior_rounds=2.0)
    assert evidence.scored_slots == [1, 2]


def test_opposite_biases_are_combined_and_the_ensemble_beats_each_member() -> None:
    evidence = forward_evidence(_pool(), lag=1, rounds=10, prior_rounds=0.0)
    weights = evidence.future.weights
    assert weights["Low"] == pytest.approx(weights["High"], abs=0.21)
    assert weights["Noisy"] < 0.2
    mean = {label: np.nanmean(evidence.losses[label]) for label in [*_pool().labels, ENSEMBLE]}
    assert mean[ENSEMBLE] < min(mean["Low"], mean["High"], mean["Noisy"])


def test_a_series_without_a_window_gets_the_pooled_ensemble_calibrated_by_the_others() -> None:
    pool = _pool(no_window=5)
    fitted = fit_procedure(pool, [1, 2, 3, 4], 0, rounds=10, prior_rounds=2.0)
    short = fitted.forecasts[ENSEMBLE][-5:]
    assert np.isfinite(short).all()
    assert np.all(short[:, :, 2] - short[:, :, 0] > 6.0)  # wider than the members' raw +/- 3: calibrated


def test_forecasts_are_what_would_be_published() -> None:
    crossing = np.array([[[5.0, -1.0, 2.0]], [[5.0, -1.0, 2.0]]])
    out = publishable(crossing, np.array([True, False]))
    np.testing.assert_array_equal(out[0, 0], [0.0, 2.0, 5.0])
    np.testing.assert_array_equal(out[1, 0], [-1.0, 2.0, 5.0])


# --- the evidence rule --------------------------------------------------------------------


def _losses(ensemble: list[float], single: list[float]) -> dict[str, np.ndarray]:
    return {ENSEMBLE: np.array([[np.nan, *ensemble]]), "A": np.array([[np.nan, *single]])}


@pytest.mark.parametrize(
    ("ensemble", "single", "chosen"),
    [
        ([1.0, 1.0, 1.0], [0.8, 0.8, 0.8], "A"),  # 20 % better in every window
        ([1.0, 1.0, 1.0], [0.95, 0.95, 0.95], ENSEMBLE),  # better, but within the margin
        ([1.0, 1.0, 1.0], [0.3, 1.1, 1.1], ENSEMBLE),  # better on average, in one window of three
        ([1.0, 1.0], [0.5, 0.5], ENSEMBLE),  # too few windows to leave the default
        ([1.0, 1.0, 1.0], [0.5, 0.5, np.nan], ENSEMBLE),  # not scored on every window the ensemble was
    ],
)
def test_a_series_leaves_the_ensemble_only_on_evidence(ensemble, single, chosen) -> None:
    losses = _losses(ensemble, single)
    assert choose(losses, ["A"], margin=0.1, min_windows=3, slots=list(range(1, len(ensemble) + 1))) == [chosen]


def test_the_out_of_sample_estimate_chooses_on_earlier_windows_only() -> None:
    """A candidate that looked best on the earlier windows is scored on the latest one, where it is worse."""
    losses = {ENSEMBLE: np.array([[np.nan, 1.0, 1.0, 1.0, 1.0]]), "A": np.array([[np.nan, 2.0, 0.5, 0.5, 0.5]])}
    estimate = out_of_sample(losses, ["A"], [1, 2, 3, 4], margin=0.1, min_windows=3)
    assert estimate["window"] == 1
    assert estimate["selected"] == 2.0 and estimate[ENSEMBLE] == 1.0
    assert estimate["switched_series"] == 1
    assert out_of_sample(losses, ["A"], [1], margin=0.1, min_windows=3) == {}


# --- the pooled ensemble's pieces --------------------------------------------------------


def test_combining_skips_a_missing_member_and_renormalises() -> None:
    members = np.array([np.full((2, 1, 1), 10.0), np.array([[[20.0]], [[np.nan]]])])
    combined = combine_members(members, np.array([0.5, 0.5]))
    assert combined[:, 0, 0].tolist() == [15.0, 10.0]


def test_greedy_weights_are_deterministic_and_start_from_the_prior() -> None:
    actual = np.zeros((50, 2))
    members = np.stack([np.full((50, 2, 3), 1.0), np.full((50, 2, 3), -1.0), np.full((50, 2, 3), 5.0)])
    counts = greedy_weights(members, actual, np.ones(50), QUANTILES, rounds=10)
    assert counts.tolist() == [5.0, 5.0, 0.0]
    primed = greedy_weights(members, actual, np.ones(50), QUANTILES, rounds=2, initial=np.array([0.0, 0.0, 4.0]))
    assert primed[2] == 4.0 and primed.sum() == 6.0


def test_the_prior_needs_a_combination_of_at_least_two_present_members() -> None:
    from forecasting.evaluation.procedure import ensemble_weights

    history = {"A": np.zeros((0, 1, 3)), "B": np.zeros((0, 1, 3))}
    empty = np.zeros((0, 1))
    assert ensemble_weights(history, empty, np.zeros(0), QUANTILES, 10, ["A", "X"], 30.0) == {"A": 0.5, "B": 0.5}
    assert ensemble_weights(history, empty, np.zeros(0), QUANTILES, 10, ["A", "B"], 30.0) == {"A": 0.5, "B": 0.5}
    three = {**history, "C": np.zeros((0, 1, 3))}
    weights = ensemble_weights(three, empty, np.zeros(0), QUANTILES, 10, ["A", "B"], 30.0)
    assert weights == {"A": 0.5, "B": 0.5, "C": 0.0}
