"""The child process that fits one plug-in candidate on a batch of series.

Started by ``forecasting.training.isolation`` as
``python -m forecasting.training.isolated_child REQUEST_FILE MEMORY_LIMIT_MB``.
Before it imports anything heavy (or any plug-in code) it leaves the network (a
private network namespace, where the kernel allows one) and limits its address
space. It then reads the pickled request, and writes one JSON line per series to
the protocol pipe (its original stdout; the plug-in's own prints go to stderr):

    {"ready": true, "network": "..."}      once, after start-up
    {"uid": ..., "results": {...}}         one per series, in request order
    {"done": true}                         at the end

``results`` maps each requested history length to ``{"values": [[...] per quantile]}``
or ``{"error": kind, "message": text}``; kind is too_short, memory, timeout or exception.
JSON rather than pickle: the parent never unpickles what plug-in code produced.
"""

from __future__ import annotations

import ctypes
import faulthandler
import json
import os
import pickle
import resource
import sys
from typing import IO, Any

_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
NETWORK_ENFORCED = "enforced (private network namespace: no interfaces but a down loopback)"


def _map_own_ids(uid: int, gid: int) -> None:
    """Keep our own uid and gid inside a new user namespace (files stay readable)."""
    for path, content in (("/proc/self/setgroups", "deny"), ("/proc/self/uid_map", f"{uid} {uid} 1"),
                          ("/proc/self/gid_map", f"{gid} {gid} 1")):
        try:
            with open(path, "w") as handle:
                handle.write(content)
        except OSError:
            continue


def isolate_network() -> str:
    """Leave the network namespace; returns what was enforced. Must run while single-threaded."""
    try:
        unshare = ctypes.CDLL(None, use_errno=True).unshare
    except (OSError, AttributeError) as exc:
        return f"not enforced on this machine (no unshare: {exc})"
    if unshare(_CLONE_NEWNET) == 0:
        return NETWORK_ENFORCED
    uid, gid = os.getuid(), os.getgid()
    if unshare(_CLONE_NEWUSER | _CLONE_NEWNET) == 0:
        _map_own_ids(uid, gid)
        return NETWORK_ENFORCED
    return f"not enforced on this machine (unshare: {os.strerror(ctypes.get_errno())})"


def limit_memory(megabytes: int) -> None:
    limit = megabytes * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()[:300]


def _fit_all(request: dict[str, Any], y: Any, lengths: list[int], refit_always: bool, memory_mb: int) -> dict[str, Any]:
    """Forecasts for each requested history length; after a failure only the refit, if always wanted."""
    from forecasting.models.base import HistoryTooShortError
    from forecasting.training.fitting import forecast_quantiles
    from forecasting.training.time_limit import FitTimeoutError

    results: dict[str, Any] = {}
    failed = False
    for index, length in enumerate(lengths):
        if failed and not (refit_always and index == len(lengths) - 1):
            continue  # the backtest stops at its first failure too
        try:
            forecast = forecast_quantiles(
                request["model"], y[:length], request["horizon"], request["quantiles"],
                request["conformal_windows"], request["fit_time_limit"], request["history_cap"], request["label"],
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
    if argv[:1] == ["--probe-network"]:
        print(json.dumps({"network": isolate_network()}))
        return 0
    request_path, memory_mb = argv[0], int(argv[1])
    channel = os.fdopen(os.dup(1), "w")  # the protocol pipe, before stdout is redirected
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    network = isolate_network()
    limit_memory(memory_mb)
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
