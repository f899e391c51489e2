"""A wall-clock safety stop for one fit, usable in any thread (CLI, Dask worker).

A watchdog timer raises ``FitTimeoutError`` asynchronously in the thread that
runs the fit. The exception lands at the next Python bytecode, so a fit that
spends its time in many short native calls (statsforecast's optimisers) stops
within moments of the limit. Plug-ins that may hang inside native code are
isolated in child processes instead.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class FitTimeoutError(TimeoutError):
    """A fit exceeded its wall-clock limit."""


def _set_async_exception(thread_id: int, exception: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exception) if exception else None
    )


@contextmanager
def time_limit(seconds: float, what: str = "fit") -> Iterator[None]:
    """Raise FitTimeoutError in this thread when the block runs longer than ``seconds``."""
    thread_id = threading.get_ident()
    lock = threading.Lock()
    state = {"done": False, "fired": False}

    def expire() -> None:
        with lock:
            if not state["done"]:
                state["fired"] = True
                _set_async_exception(thread_id, FitTimeoutError)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        yield
    except FitTimeoutError:
        if not state["fired"]:
            raise  # not ours (the block's own, or a nested limit's): never swallow it
    finally:
        with lock:
            state["done"] = True
            timer.cancel()
            if state["fired"]:
                _set_async_exception(thread_id, None)  # drop it if it was not delivered yet
    if state["fired"]:
        raise FitTimeoutError(f"{what} exceeded its time limit of {seconds:g} s")
