"""The wall-clock limit of a fit: in any thread, never stray, never swallowing other errors."""

from __future__ import annotations

import threading
import time

import pytest

from forecasting.training.time_limit import FitTimeoutError, time_limit

SAFETY_SECONDS = 20.0  # a busy loop gives up on its own after this (a broken limit fails, never hangs)


def _busy(seconds: float) -> None:
    """Spin in Python bytecode (where the asynchronous timeout lands) for ``seconds``."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def _in_thread(function) -> BaseException | None:
    """Run ``function`` in a new (non-main) thread; return what it raised."""
    outcome: list[BaseException | None] = [None]

    def target() -> None:
        try:
            function()
        except BaseException as exc:  # hand it to the test thread
            outcome[0] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(SAFETY_SECONDS + 10)
    assert not thread.is_alive()
    return outcome[0]


def test_time_limit_stops_a_busy_loop_in_a_worker_thread():
    started = time.perf_counter()

    def spin() -> None:
        with time_limit(0.3, "spin fit"):
            _busy(SAFETY_SECONDS)

    raised = _in_thread(spin)
    assert isinstance(raised, FitTimeoutError)
    assert "spin fit exceeded its time limit of 0.3 s" in str(raised)
    assert time.perf_counter() - started < SAFETY_SECONDS / 2


def test_time_limit_leaves_no_stray_exception_after_a_block_that_finished_in_time():
    def quick_then_busy() -> None:
        for _ in range(20):
            with time_limit(0.2, "quick"):
                sum(range(1000))
        _busy(0.6)  # well past every limit: a late timer must not fire into this

    assert _in_thread(quick_then_busy) is None
    quick_then_busy()  # in the main thread too


def test_time_limit_reports_a_timeout_the_block_swallowed():
    swallowed: list[str] = []

    def swallowing() -> None:
        with time_limit(0.2, "swallow"):
            try:
                _busy(SAFETY_SECONDS)
            except Exception as exc:  # a careless model catches everything
                swallowed.append(type(exc).__name__)

    raised = _in_thread(swallowing)
    assert swallowed == ["FitTimeoutError"]
    assert isinstance(raised, FitTimeoutError)
    assert "swallow exceeded" in str(raised)


def test_time_limit_passes_through_errors_that_are_not_its_own():
    with pytest.raises(ValueError, match="model bug"), time_limit(5.0):
        raise ValueError("model bug")
    # a FitTimeoutError raised inside (here by a nested, shorter limit) is not swallowed
    with pytest.raises(FitTimeoutError, match="inner exceeded"), time_limit(30.0, "outer"), time_limit(0.2, "inner"):
        _busy(SAFETY_SECONDS)
