"""The child process that fits one plug-in candidate on a batch of series.

Started by ``forecasting.training.isolation`` in the sandbox
(``forecasting.models.sandbox``: no network, an address-space limit, an allow-listed
environment, a private folder) as
``python -m forecasting.training.isolated_child REQUEST_FILE MEMORY_LIMIT_MB``.
It reads the pickled request, and writes one JSON line per series to the protocol
pipe (its original stdout; the plug-in's own prints go to stderr):

    {"ready": true, "network": "..."}      once, after start-up
    {"uid": ..., "results": {...}}         one per series, in request order
    {"done": true}                         at the end

``results`` maps each requested history length to ``{"values": [[...] per quantile]}``
or ``{"error": kind, "message": text}``; kind is too_short, memory, timeout or exception.
JSON rather than pickle: the parent never unpickles what plug-in code produced.
"""

from __future__ import annotations

import faulthandler
import json
import os
import pickle
import sys
from typing import IO, Any

from forecasting.models.sandbox import sandbox_status


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()[:300]


def _fit_all(request: dict[str, Any], y: Any, lengths: list[int], refit_always: bool, memory_mb: int) -> dict[str, Any]:
    """Forecasts for each requested history length; after a failure only the refit, if always wanted."""
    from forecasting.models.base import HistoryTooShortError
    from forecasting.training.fitting import raw_forecast
    from forecasting.training.time_limit import FitTimeoutError

    results: dict[str, Any] = {}
    failed = False
    for index, length in enumerate(lengths):
        if failed and not (refit_always and index == len(lengths) - 1):
            continue  # the backtest stops at its first failure too
        try:
            forecast = raw_forecast(
                request["model"], y[:length], request["horizon"], request["quantiles"],
                request["fit_time_limit"], request["history_cap"], request["label"],
            )
        except HistoryTooShortError as exc:
            results[str(length)] = {"error": "too_short", "message": str(exc)}
        except MemoryError as exc:
            results[str(length)] = {"error": "memory", "message": f"memory limit of {memory_mb} MiB exceeded ({_describe(exc)})"}
        except FitTimeoutError as exc:
            results[str(length)] = {"error": "timeout", "message": _describe(exc)}
        except (Exception, SystemExit) as exc:  # plug-in code may raise anything, even sys.exit()
            results[str(length)] = {"error": "exception", "message": _describe(exc)}
        else:
            results[str(length)] = {"values": [[float(v) for v in forecast[q]] for q in request["quantiles"]]}
            continue
        failed = True
    return results


def _send(channel: IO[str], record: dict[str, Any]) -> None:
    channel.write(json.dumps(record) + "\n")
    channel.flush()


def main(argv: list[str]) -> int:
    request_path, memory_mb = argv[0], int(argv[1])
    channel = os.fdopen(os.dup(1), "w")  # the protocol pipe, before stdout is redirected
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    network = sandbox_status().get("network", "not enforced (not started in the sandbox)")
    faulthandler.enable()  # a crash leaves its traceback in the stderr the parent reports
    try:
        with open(request_path, "rb") as handle:
            request = pickle.load(handle)
    except BaseException as exc:  # the plug-in does not even import here: every series fails alike
        _send(channel, {"fatal": _describe(exc)})
        return 1
    _send(channel, {"ready": True, "network": network})
    for uid, y, lengths, refit_always in request["series"]:
        _send(channel, {"uid": uid, "results": _fit_all(request, y, lengths, refit_always, memory_mb)})
    _send(channel, {"done": True})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
