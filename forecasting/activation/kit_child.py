"""The child process that runs the conformance kit on one plug-in, in the sandbox.

Started by ``forecasting.activation.conformance.check_sandboxed`` as
``python -m forecasting.activation.kit_child NAME FIRST_CHECK``: loads the model registered
as NAME (entry point or built-in) and runs the kit's checks from index FIRST_CHECK on,
writing one JSON line per check to the protocol pipe (its original stdout; the plug-in's
own prints go to stderr):

    {"ready": true, "network": "...", "processes": "..."}   once, after loading the model
    {"check": ..., "status": ..., "reason": ..., "seconds": ...}   one per check, in kit order
    {"done": true}                                          at the end
    {"fatal": "..."}                                        the model cannot be loaded
"""

from __future__ import annotations

import faulthandler
import json
import os
import sys
from dataclasses import asdict
from typing import IO, Any

from forecasting.models.sandbox import sandbox_status


def _send(channel: IO[str], record: dict[str, Any]) -> None:
    channel.write(json.dumps(record) + "\n")
    channel.flush()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()[:500]


def main(argv: list[str]) -> int:
    name, first = argv[0], int(argv[1])
    channel = os.fdopen(os.dup(1), "w")  # the protocol pipe, before stdout is redirected
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    faulthandler.enable()  # a crash leaves its traceback in the stderr the parent reports
    try:
        from forecasting.activation.conformance import KIT
        from forecasting.models.catalog import model_class
        from forecasting.models.conformance import CheckResult, run_checks

        found = model_class(name)
    except BaseException as exc:  # a plug-in that does not even load: every check fails alike
        _send(channel, {"fatal": _describe(exc)})
        return 1
    _send(channel, {"ready": True, **sandbox_status()})
    for check in KIT[first:]:
        try:
            (result,) = run_checks(found, [check])
        except BaseException as exc:  # sys.exit() or the like inside plug-in code
            result = CheckResult(check.name, "fail", _describe(exc))
        _send(channel, {"check": check.name, **asdict(result)})
    _send(channel, {"done": True})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
