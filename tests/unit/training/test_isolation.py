"""Plug-in isolation: every way a plug-in can misbehave costs the affected series that candidate only.

The misbehaving plug-in (tests/plugins/fixtures/misbehaving, installed for the tests) acts up only on the
series whose first value is its trigger. Each batch holds three series: ``a`` (fine), ``b``
(the trigger) and ``c`` (fine, after ``b``: when the child dies on ``b``, ``c`` must be
retried in a fresh child). Beside the bad plug-in compete an isolated plug-in that behaves
and an in-process candidate; real child processes throughout, nothing mocked. The plans
have no ensemble: each series gets its best single candidate.
"""

from __future__ import annotations

import importlib
import socket
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecasting.data.contract import STATUS_NEW, STATUS_OK
from forecasting.training.batch import backtest_batch
from forecasting.training.isolation import (
    IsolatedFailure,
    network_isolation,
    run_candidate,
)
from forecasting.training.plan import Candidate, IsolationLimits, TrainingPlan
from forecasting.training.selection_step import train_batch

H = 4
N = 40  # backtest windows cut after 32 and 36 observations
TRIGGER = 7000.0
QUANTILES = (0.1, 0.5, 0.9)
LIMITS = IsolationLimits(timeout_seconds=60.0, memory_limit_mb=1024)
DS = pd.date_range("2024-01-07", periods=N, freq="W-SUN").to_numpy()


@pytest.fixture
def plugins(fixture_plugins: Path) -> types.ModuleType:
    """The misbehaving models, importable here and (through PYTHONPATH) in child processes."""
    return importlib.import_module("misbehaving_models")


def _series(level: float) -> np.ndarray:
    t = np.arange(N, dtype=np.float64)
    return level + 10.0 * np.sin(t / 3.0) + 0.5 * t  # starts exactly at `level`


PANEL = {"a": _series(100.0), "b": _series(TRIGGER), "c": _series(300.0)}


def _history() -> tuple[pd.DataFrame, pd.DataFrame]:
    history = pd.DataFrame(
        {"unique_id": np.repeat(list(PANEL), N), "ds": np.tile(DS, len(PANEL)), "y": np.concatenate(list(PANEL.values()))}
    )
    lifecycle = pd.DataFrame({"unique_id": list(PANEL), "lifecycle": "smooth", "demand_class": "smooth"})
    return history, lifecycle


def _plan(candidates: list[Candidate], fallbacks: list[Candidate]) -> TrainingPlan:
    return TrainingPlan(
        horizon=H,
        quantiles=QUANTILES,
        season_length=1,
        n_windows=2,
        step=H,
        history_cap=1000,
        fit_time_limit=30.0,
        conformal_windows=2,
        explosion_factor=10.0,
        candidates=tuple(candidates),
        fallbacks=tuple(fallbacks),
        ensemble=False,
    )


def _competition(plugins: types.ModuleType, mode: str, timeout: float = 60.0) -> TrainingPlan:
    bad = Candidate("Bad", plugins.Misbehaving(mode=mode, trigger=TRIGGER), IsolationLimits(timeout, 1024))
    steady = Candidate("Steady", plugins.Misbehaving(width=6.0), LIMITS)
    in_process = Candidate("InProcess", plugins.Misbehaving(width=4.0))
    return _plan([bad, steady, in_process], [Candidate("Last", plugins.Misbehaving())])


def _scored(result) -> dict[str, set[str]]:
    return result.scores.groupby("unique_id")["candidate"].agg(set).to_dict()


def _assert_valid_forecasts(result) -> None:
    assert set(result.forecasts["unique_id"]) == set(PANEL)
    matrix = result.forecasts[["p10", "p50", "p90"]].to_numpy()
    assert np.isfinite(matrix).all()
    assert (np.diff(matrix, axis=1) >= 0).all()


@pytest.mark.parametrize(
    ("mode", "recorded"),
    [
        ("hang", "Bad cutoff 32: timeout: no result within 3 s for this series (child killed)"),
        ("exit", "Bad cutoff 32: exit: the child process died while fitting this series: exit code 3"),
        ("segfault", "Bad cutoff 32: signal: the child process died while fitting this series: "
                     "killed by signal 11 (SIGSEGV)"),
        ("memory", "Bad cutoff 32: memory: memory limit of 1024 MiB exceeded (MemoryError"),
        ("raise", "Bad cutoff 32: exception: RuntimeError: misbehaving plug-in: scripted failure"),
        ("nan", "Bad cutoff 32: ValueError: non-finite forecast"),
    ],
)
def test_a_misbehaving_plugin_costs_only_the_affected_series_that_candidate(plugins, mode, recorded):
    history, lifecycle = _history()
    # only the hang waits for the timeout; a long one keeps the others from timing out on a busy machine
    timeout = 3.0 if mode == "hang" else 60.0
    result = train_batch(history, lifecycle, _competition(plugins, mode, timeout=timeout), "W-SUN")

    ledger = result.ledger.set_index("unique_id")
    assert recorded in ledger.loc["b", "failures"]
    assert ledger.loc["a", "failures"] == "" and ledger.loc["c", "failures"] == ""
    assert (ledger["status"] == STATUS_OK).all()
    # the other series kept the bad plug-in (c in a fresh child when b killed the first one) ...
    scored = _scored(result)
    assert scored["a"] == scored["c"] == {"Bad", "Steady", "InProcess", "Last"}  # the fallback is backtested too
    # ... and the affected series kept the other plug-in and the in-process candidate
    assert scored["b"] == {"Steady", "InProcess", "Last"}
    _assert_valid_forecasts(result)


def test_crossing_quantiles_are_published_sorted(plugins):
    crossing = Candidate("Crossing", plugins.Misbehaving(mode="cross", trigger=TRIGGER), LIMITS)
    history, lifecycle = _history()
    result = train_batch(history, lifecycle, _plan([crossing], [Candidate("Last", plugins.Misbehaving())]), "W-SUN")

    ledger = result.ledger.set_index("unique_id")
    assert (ledger["model"] == "Crossing").all() and (ledger["failures"] == "").all()
    # calibrated forecasts are sorted before the quality gate sees them: nothing left to repair
    assert (ledger["repairs"] == "").all()
    _assert_valid_forecasts(result)
    rows = result.backtest[result.backtest["unique_id"] == "b"][["p10", "p50", "p90"]].to_numpy()
    assert len(rows) and (np.diff(rows, axis=1) >= 0).all()


def test_output_on_stdout_does_not_disturb_the_results(plugins):
    history, lifecycle = _history()
    result = train_batch(history, lifecycle, _competition(plugins, "print"), "W-SUN")
    assert (result.ledger["failures"] == "").all()
    assert _scored(result)["b"] == {"Bad", "Steady", "InProcess", "Last"}


def test_isolated_forecasts_equal_in_process_ones(plugins):
    isolated = Candidate("Model", plugins.Misbehaving(width=3.0), LIMITS)
    local = Candidate("Model", plugins.Misbehaving(width=3.0))
    fallback = [Candidate("Last", plugins.Misbehaving())]
    history, lifecycle = _history()
    a = train_batch(history, lifecycle, _plan([isolated], fallback), "W-SUN")
    b = train_batch(history, lifecycle, _plan([local], fallback), "W-SUN")
    pd.testing.assert_frame_equal(a.forecasts, b.forecasts)
    pd.testing.assert_frame_equal(a.scores, b.scores)


def test_the_backtest_step_alone_runs_plugins_in_a_child_too(plugins):
    history, lifecycle = _history()
    raw = backtest_batch(history, lifecycle, _competition(plugins, "exit"))
    notes = raw.notes.set_index("unique_id")
    assert "Bad cutoff 32: exit: the child process died" in notes.loc["b", "failures"]
    assert notes.loc["a", "failures"] == notes.loc["c", "failures"] == ""
    bad = raw.raw[raw.raw["candidate"] == "Bad"]
    assert set(bad["unique_id"]) == {"a", "c"} and sorted(bad["length"].unique()) == [N - 2 * H, N - H, N]


def test_a_plugin_that_fails_in_every_child_is_given_up_after_three_series(plugins):
    exiting = Candidate("Exit", plugins.Misbehaving(mode="exit", trigger=TRIGGER), LIMITS)
    plan = _plan([exiting], [])
    work = {f"s{i}": (_series(TRIGGER), [N - 2 * H, N - H, N]) for i in range(5)}
    results = run_candidate(exiting, plan, work)
    kinds = [results[uid][N].kind for uid in sorted(work)]
    assert kinds == ["exit", "exit", "exit", "skipped", "skipped"]
    assert "failed on 3 series in a row" in results["s4"][N].message


def test_a_plugin_no_child_can_load_fails_every_series_at_once(plugins):
    ghost = types.ModuleType("ghost_plugin_module")  # importable here only
    ghost.Ghost = type("Ghost", (plugins.Misbehaving,), {"__module__": "ghost_plugin_module"})
    sys.modules["ghost_plugin_module"] = ghost
    try:
        candidate = Candidate("Ghost", ghost.Ghost(), LIMITS)
        results = run_candidate(candidate, _plan([candidate], []), {"a": (PANEL["a"], [N]), "c": (PANEL["c"], [N])})
    finally:
        del sys.modules["ghost_plugin_module"]
    assert {results[uid][N].kind for uid in ("a", "c")} == {"start"}
    assert "cannot be loaded in a child process: ModuleNotFoundError" in results["a"][N].message


def test_a_model_that_cannot_be_pickled_fails_without_a_child(plugins):
    local_class = type("Local", (plugins.Misbehaving,), {"__qualname__": "make.<locals>.Local"})
    candidate = Candidate("Local", local_class(), LIMITS)
    results = run_candidate(candidate, _plan([candidate], []), {"a": (PANEL["a"], [N])})
    failure = results["a"][N]
    assert isinstance(failure, IsolatedFailure) and failure.kind == "start"
    assert "cannot be sent to a child process" in failure.message


def test_the_network_is_unreachable_from_a_child_where_enforced(plugins):
    status = network_isolation()
    if not status.startswith("enforced"):
        pytest.skip(f"plug-in network isolation: {status}")
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        caller = Candidate("Caller", plugins.Misbehaving(mode="network", trigger=TRIGGER, port=port), LIMITS)
        results = run_candidate(caller, _plan([caller], []), {"b": (PANEL["b"], [N])})
    failure = results["b"][N]
    assert isinstance(failure, IsolatedFailure) and failure.kind == "exception"
    assert "Error" in failure.message  # unreachable, refused: never connected


def test_a_plugin_forecasts_a_short_series_in_its_pools_ensemble(plugins):
    plugin = Candidate("Plugin", plugins.Misbehaving(width=1.0), LIMITS)
    plan = TrainingPlan(**{**_plan([plugin], [plugin]).__dict__, "ensemble": True})
    history = pd.DataFrame({"unique_id": "new", "ds": DS[:6], "y": PANEL["a"][:6]})
    lifecycle = pd.DataFrame({"unique_id": ["new"], "lifecycle": ["new"], "demand_class": ["smooth"]})
    result = train_batch(history, lifecycle, plan, "W-SUN")
    ledger = result.ledger.iloc[0]
    assert (ledger["status"], ledger["model"], ledger["ensemble_members"], ledger["failures"]) == (
        STATUS_NEW, "Ensemble", "Plugin:1", ""
    )
    np.testing.assert_allclose(result.forecasts["p50"], PANEL["a"][5])
