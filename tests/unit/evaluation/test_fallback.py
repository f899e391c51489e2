"""The fallback chain training and serving share (``evaluation.fallback``).

Each link's forecast is scripted: a value, NaN, an explosion, or an exception, so every way a
link can fail is exact. Training's ledger texts (``test_shard_training``) and serving's
statuses (``test_bundle_forecaster``) are tested with their callers.
"""

from __future__ import annotations

import numpy as np
import pytest

from forecasting.data.contract import STATUS_FALLBACK, STATUS_NEW, STATUS_OK
from forecasting.evaluation.fallback import NON_FINITE, FallbackChain, chain_labels

QUANTILES = (0.1, 0.5, 0.9)
HISTORY = np.array([10.0, 12.0, 11.0, 13.0])
H = 3


def _forecast(level: float) -> dict[float, np.ndarray]:
    return {q: np.full(H, level + 2.0 * (q - 0.5)) for q in QUANTILES}


def _scripted(**links: object):  # type: ignore[no-untyped-def]
    """forecast_of(label): a level, "nan", "explode" or an exception to raise; records the calls."""
    calls: list[str] = []

    def forecast_of(label: str) -> dict[float, np.ndarray]:
        calls.append(label)
        what = links[label]
        if isinstance(what, Exception):
            raise what
        if what == "nan":
            return {q: np.full(H, np.nan) for q in QUANTILES}
        if what == "explode":
            return _forecast(1e9)
        return _forecast(float(what))  # type: ignore[arg-type]

    return forecast_of, calls


def test_chain_order_keeps_each_label_once_in_its_first_place():
    assert chain_labels(["A", "Ensemble", "B", "A"], ["Naive", "B", "HistoricAverage", "Naive"]) == [
        "A", "Ensemble", "B", "Naive", "HistoricAverage"]
    assert chain_labels([], ["Naive", "HistoricAverage"]) == ["Naive", "HistoricAverage"]
    assert FallbackChain(["A", "A", "B"], HISTORY, 10.0).labels == ["A", "B"]


def test_the_first_link_that_passes_wins_and_the_rest_are_never_produced():
    forecast_of, calls = _scripted(A=12.0, B=11.0)
    chain = FallbackChain(["A", "B"], HISTORY, 10.0)
    gate = chain.walk(forecast_of)
    assert calls == ["A"] and chain.current == "A" and chain.failures == []
    assert gate is chain.passed and gate is not None and gate.failure is None
    np.testing.assert_array_equal(gate.quantiles[0.5], np.full(H, 12.0))
    assert chain.status() == STATUS_OK and not chain.open


@pytest.mark.parametrize(
    ("first", "gate", "no_forecast"),
    [
        (RuntimeError("fit failed"), None, True),
        ("nan", NON_FINITE, True),
        ("explode", "forecast_explosion", False),
    ],
)
def test_a_failing_link_is_recorded_and_the_next_one_tried(first, gate, no_forecast):
    forecast_of, calls = _scripted(A=first, Naive=11.0)
    chain = FallbackChain(["A", "Naive"], HISTORY, 10.0)
    passed = chain.walk(forecast_of)
    assert calls == ["A", "Naive"] and chain.current == "Naive"
    assert passed is not None and passed.quantiles[0.5][0] == 11.0
    [failure] = chain.failures
    assert (failure.label, failure.gate, failure.no_forecast) == ("A", gate, no_forecast)
    assert failure.error is first if isinstance(first, Exception) else failure.error is None
    assert chain.status() == STATUS_FALLBACK


def test_a_forecast_the_gate_cannot_read_costs_that_link_only():
    chain = FallbackChain(["A", "B"], HISTORY, 10.0)
    gate = chain.walk(lambda label: {0.5: np.array(["text"] * H)} if label == "A" else _forecast(11.0))
    assert gate is not None and chain.current == "B"
    [failure] = chain.failures
    assert (failure.label, failure.gate, type(failure.error)) == ("A", None, ValueError) and failure.no_forecast


def test_a_chain_where_every_link_fails_ends_without_a_forecast():
    forecast_of, calls = _scripted(A=ValueError("x"), B="nan", C="explode")
    chain = FallbackChain(["A", "B", "C"], HISTORY, 10.0)
    assert chain.walk(forecast_of) is None
    assert calls == ["A", "B", "C"] and not chain.open and chain.passed is None
    assert [f.label for f in chain.failures] == ["A", "B", "C"]
    assert [f.no_forecast for f in chain.failures] == [True, True, False]


def test_the_gate_repairs_what_it_can_and_measures_explosions_against_the_given_history():
    crossing = {0.1: np.full(H, 12.0), 0.5: np.full(H, 11.0), 0.9: np.full(H, -1.0)}
    chain = FallbackChain(["A"], HISTORY, 10.0)
    gate = chain.walk(lambda label: crossing)
    assert gate is not None and gate.repairs == ["sorted_quantiles", "clipped_negative"]
    np.testing.assert_array_equal(gate.quantiles[0.1], np.zeros(H))
    # the same forecast explodes against a smaller history
    small = FallbackChain(["A"], HISTORY / 100.0, 10.0)
    assert small.walk(lambda label: crossing) is None and small.failures[0].gate == "forecast_explosion"


def test_status_new_wins_and_an_unchosen_first_link_is_a_fallback():
    chain = FallbackChain(["Naive"], HISTORY, 10.0)
    chain.walk(_scripted(Naive=11.0)[0])
    assert chain.status(new=True) == STATUS_NEW
    assert chain.status(first_is_choice=False) == STATUS_FALLBACK  # a series its model does not know
    assert chain.status() == STATUS_OK


def test_chains_advance_in_rounds_one_link_at_a_time():
    """Serving's use: every pending chain tries its current link, then the next round begins."""
    scripts = {"s1": _scripted(A=RuntimeError("no"), B=11.0)[0], "s2": _scripted(A=12.0, B=11.0)[0]}
    chains = {uid: FallbackChain(["A", "B"], HISTORY, 10.0) for uid in scripts}
    rounds = []
    pending = sorted(chains)
    while pending:
        rounds.append({uid: chains[uid].current for uid in pending})
        for uid in pending:
            chains[uid].attempt(lambda uid=uid: scripts[uid](chains[uid].current))
        pending = [uid for uid in pending if chains[uid].open]
    assert rounds == [{"s1": "A", "s2": "A"}, {"s1": "B"}]
    assert {uid: c.current for uid, c in chains.items()} == {"s1": "B", "s2": "A"}
