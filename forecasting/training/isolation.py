"""Fit plug-in candidates in child processes, so a bad plug-in costs a series its candidate only.

Per batch of series and per plug-in candidate, one child process
(``forecasting.training.isolated_child``, started in the sandbox of
``forecasting.models.sandbox``: Dask worker processes are daemonic and cannot use
multiprocessing) computes every backtest window's forecast and the final refit of
each series, and streams one record per series back. The parent gives each series
``timeout_seconds`` of wall clock; the child's address space is limited to
``memory_limit_mb``; it has no network, no credentials, and whatever it starts is
killed with it. When the child hangs,
crashes (exit, signal) or runs out of memory mid-batch, the finished series keep
their results, the series in progress is charged with the failure, and the rest
of the batch goes to a fresh child. Built-in candidates never come here.
"""

from __future__ import annotations

import json
import logging
import pickle
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from forecasting.config import Settings
from forecasting.models.base import HistoryTooShortError
from forecasting.models.catalog import installed_plugins
from forecasting.models.sandbox import TIMED_OUT, Sandboxed, sandbox_probe, sandboxed
from forecasting.training.fitting import QuantileForecast
from forecasting.training.plan import Candidate, TrainingPlan

logger = logging.getLogger(__name__)

STARTUP_SECONDS = 60.0  # the start-up (imports, unpickling the model) may take this long, or the per-series timeout
MAX_DEATHS_IN_A_ROW = 3  # then the rest of the batch is not attempted with this plug-in
REQUEST_FILE = "request.pickle"
_MEMORY_HINTS = ("MemoryError", "Cannot allocate memory", "bad_alloc", "out of memory")


class IsolatedFitError(RuntimeError):
    """A plug-in failed in its child process; the message gives the reason (kind first)."""


@dataclass(frozen=True)
class IsolatedFailure:
    """Why a series has no forecast from an isolated candidate."""

    kind: str  # too_short, exception, memory, timeout, exit, signal, start, skipped
    message: str

    def exception(self) -> Exception:
        if self.kind == "too_short":
            return HistoryTooShortError(self.message)
        return IsolatedFitError(f"{self.kind}: {self.message}")


Outcome = QuantileForecast | IsolatedFailure
SeriesOutcomes = dict[str, dict[int, Outcome]]  # candidate label -> history length -> outcome


def isolated_forecast(outcomes: SeriesOutcomes, label: str, length: int) -> QuantileForecast:
    """The child's forecast of ``label`` on the first ``length`` observations; raises its failure."""
    found = outcomes.get(label, {}).get(length)
    if found is None:
        raise IsolatedFitError(f"missing: no isolated result for a history of {length}")
    if isinstance(found, IsolatedFailure):
        raise found.exception()
    return found


@dataclass(frozen=True)
class IsolatedModel:
    """An isolated model the plan can use, under its label as the refit finds it."""

    candidate: Candidate
    backtested: bool  # a candidate: forecasts at the backtest windows, then the refit
    fallback: bool  # in the fallback chain: the refit is needed whatever the backtest did


def isolated_models(plan: TrainingPlan) -> list[IsolatedModel]:
    """Every isolated model of the plan (a candidate wins over a fallback of the same label)."""
    fallback_labels = {c.label for c in plan.fallbacks}
    by_label = {c.label: c for c in (*plan.fallbacks, *plan.candidates)}
    backtested = {c.label for c in plan.candidates}
    return [
        IsolatedModel(c, label in backtested, label in fallback_labels)
        for label, c in by_label.items()
        if c.isolation is not None
    ]


def requested_lengths(model: IsolatedModel, n_obs: int, demand: str, plan: TrainingPlan) -> list[int]:
    """History lengths training asks this model to forecast from: its backtest windows', then the future's."""
    candidate = model.candidate
    if not plan.eligible(candidate, demand, n_obs):
        return []
    return [w.train_end for w in plan.windows(n_obs) if plan.eligible(candidate, demand, w.train_end)] + [n_obs]


def run_isolated(plan: TrainingPlan, series: Mapping[str, tuple[np.ndarray, str]]) -> dict[str, SeriesOutcomes]:
    """Every isolated candidate's forecasts for ``series`` (id -> (y, demand type)), per series."""
    outcomes: dict[str, SeriesOutcomes] = {uid: {} for uid in series}
    for model in isolated_models(plan):
        work = {
            uid: (y, lengths)
            for uid, (y, demand) in series.items()
            if (lengths := requested_lengths(model, y.size, demand, plan))
        }
        if work:
            for uid, by_length in run_candidate(model.candidate, plan, work, model.fallback).items():
                outcomes[uid][model.candidate.label] = by_length
    return outcomes


def run_candidate(
    candidate: Candidate,
    plan: TrainingPlan,
    work: Mapping[str, tuple[np.ndarray, list[int]]],
    refit_always: bool = False,
) -> dict[str, dict[int, Outcome]]:
    """Forecasts of one isolated candidate for ``work`` (id -> (y, lengths)), in as many children as it takes.

    After a failure the child skips a series' remaining lengths, as the backtest would,
    except the last one (the refit) when ``refit_always`` (the model is also a fallback).
    """
    assert candidate.isolation is not None
    results: dict[str, dict[int, Outcome]] = {}
    pending = list(work)
    deaths_in_a_row = 0
    while pending:
        child = _Child(candidate, plan, [(uid, *work[uid], refit_always) for uid in pending])
        finished, failure = child.run()
        results.update(finished)
        pending = [uid for uid in pending if uid not in finished]
        if failure is None or not pending:
            break
        if failure.kind == "start":  # nothing series-specific: every remaining series fails alike
            charged, pending = pending, []
        else:
            charged, pending = pending[:1], pending[1:]
            deaths_in_a_row = deaths_in_a_row + 1 if not finished else 1
        for uid in charged:
            results[uid] = dict.fromkeys(work[uid][1], failure)
            logger.warning("plug-in %s on series %s: %s: %s", candidate.label, uid, failure.kind, failure.message)
        if pending and deaths_in_a_row >= MAX_DEATHS_IN_A_ROW:
            skipped = IsolatedFailure(
                "skipped", f"not attempted: the child process failed on {deaths_in_a_row} series in a row in this batch"
            )
            for uid in pending:
                results[uid] = dict.fromkeys(work[uid][1], skipped)
            pending = []
    return results


def _decode(results: dict[str, Any], quantiles: tuple[float, ...]) -> dict[int, Outcome]:
    decoded: dict[int, Outcome] = {}
    for length, result in results.items():
        if "error" in result:
            decoded[int(length)] = IsolatedFailure(str(result["error"]), str(result.get("message", ""))[:300])
        else:
            values = result["values"]
            decoded[int(length)] = {q: np.asarray(v, dtype=np.float64) for q, v in zip(quantiles, values, strict=True)}
    return decoded


class _Child:
    """One child process over a list of series: start, stream records, enforce the timeout."""

    def __init__(self, candidate: Candidate, plan: TrainingPlan, series: list[tuple[str, np.ndarray, list[int], bool]]) -> None:
        assert candidate.isolation is not None
        self.candidate, self.plan, self.series = candidate, plan, series
        self.limits = candidate.isolation

    def _request(self) -> dict[str, Any]:
        plan, candidate = self.plan, self.candidate
        return {
            "model": candidate.model,
            "label": candidate.label,
            "horizon": plan.horizon,
            "quantiles": plan.quantiles,
            "conformal_windows": plan.conformal_windows,
            "fit_time_limit": plan.fit_time_limit,
            "history_cap": plan.capped_history(candidate),
            "series": self.series,
        }

    def run(self) -> tuple[dict[str, dict[int, Outcome]], IsolatedFailure | None]:
        """Results of the series the child finished, and why it stopped early (None: it did not)."""
        try:
            payload = pickle.dumps(self._request())
        except Exception as exc:  # e.g. a class defined inside a function: no child can import it
            return {}, IsolatedFailure("start", f"the model cannot be sent to a child process: {type(exc).__name__}: {exc}")
        command = [sys.executable, "-m", "forecasting.training.isolated_child", REQUEST_FILE, str(self.limits.memory_limit_mb)]
        with sandboxed(command, self.limits.memory_limit_mb, {REQUEST_FILE: payload}) as child:
            finished, failure = self._records(child)
            if failure is not None and failure.kind in ("exit", "signal", "start"):
                failure = _with_stderr(failure, child.stderr_tail())
        return finished, failure

    def _records(self, child: Sandboxed) -> tuple[dict[str, dict[int, Outcome]], IsolatedFailure | None]:
        finished: dict[str, dict[int, Outcome]] = {}
        ready = False
        timeout = self.limits.timeout_seconds
        while True:
            allowance = timeout if ready else max(STARTUP_SECONDS, timeout)
            line = child.next_line(allowance)
            if line is TIMED_OUT:
                what = "series" if ready else "start-up"
                return finished, IsolatedFailure(
                    "timeout" if ready else "start", f"no result within {allowance:g} s for this {what} (child killed)"
                )
            if line is None:  # the child exited
                return finished, _death(child, ready)
            try:
                record = json.loads(str(line))
                if "uid" in record:
                    finished[str(record["uid"])] = _decode(record["results"], self.plan.quantiles)
            except (ValueError, KeyError, TypeError, AttributeError):
                return finished, IsolatedFailure("exception", f"unreadable output from the child: {str(line)[:100]!r}")
            if "fatal" in record:
                return finished, IsolatedFailure("start", f"the plug-in cannot be loaded in a child process: {record['fatal']}")
            if "ready" in record:
                ready = True
                _note_network(str(record.get("network", "")))
            elif "done" in record:
                return finished, None


def _death(child: Sandboxed, ready: bool) -> IsolatedFailure:
    ended = child.exit()
    if ended is None:  # closed its output but lives on
        return IsolatedFailure("exit", "the child closed its output without finishing")
    kind, text = ("signal" if ended.signal else "exit"), ended.describe()
    if not ready:
        return IsolatedFailure("start", f"the child died during start-up: {text}")
    return IsolatedFailure(kind, f"the child process died while fitting this series: {text}")


def _with_stderr(failure: IsolatedFailure, text: str) -> IsolatedFailure:
    """Add the telling line of what the child wrote to stderr (faulthandler's report, an error)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return failure
    telling = [line for line in lines if "Fatal Python error" in line] or [line for line in lines if "Error" in line] or lines
    kind = "memory" if any(hint in text for hint in _MEMORY_HINTS) and failure.kind != "start" else failure.kind
    return IsolatedFailure(kind, f"{failure.message}; stderr: {telling[-1][:150]}")


_network_status: dict[str, str] = {}


def _note_network(status: str) -> None:
    if status and status != _network_status.get("last"):
        _network_status["last"] = status
        if not status.startswith("enforced"):
            logger.warning("plug-in network isolation: %s", status)


@cache
def network_isolation() -> str:
    """What a plug-in child process gets on this machine: 'enforced (...)' or 'not enforced on this machine (...)'."""
    if _network_status.get("last"):
        return _network_status["last"]
    return sandbox_probe().get("network", "not enforced on this machine (probe failed)")


@cache
def process_isolation() -> str:
    """Whether what a plug-in child starts is killed with it on this machine (and how)."""
    return sandbox_probe().get("processes", "unknown (probe failed)")


def isolation_summary(settings: Settings) -> dict[str, Any]:
    """How the configured plug-ins run, for a run's summary (empty when none is configured)."""
    names = [c.name for c in settings.models.candidates] + list(settings.models.fallback)
    installed = installed_plugins()
    plugins = list(dict.fromkeys(name for name in names if name in installed))
    if not plugins:
        return {}
    if not settings.plugins.isolation:
        return {"plugins": plugins, "process": "in-process (plugins.isolation is off)", "network": "not enforced (plugins.isolation is off)"}
    limits = {name: dict(zip(("timeout_seconds", "memory_limit_mb"), settings.plugins.limits_for(name), strict=True)) for name in plugins}
    return {"plugins": plugins, "process": "child process per batch and plug-in", "limits": limits,
            "network": network_isolation(), "processes": process_isolation(),
            "environment": "allow-listed (no credentials), a private temporary folder; the file system is not isolated"}
