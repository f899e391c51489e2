"""The full conformance kit: the model-level checks plus two that need the training machinery.

``check_sandboxed`` runs every check on an installed plug-in in sandboxed child processes
(``forecasting plugins check NAME``, activation); ``check_model`` runs them on a class in
this process;
``parametrize_with_checks`` turns the kit into pytest cases for a team's own tests:

    from forecasting.activation.conformance import parametrize_with_checks

    @parametrize_with_checks([MyModel])
    def test_conformance(model_class, check):
        check(model_class)
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from forecasting.config import Settings
from forecasting.data.contract import ID
from forecasting.models.base import ForecastModel
from forecasting.models.catalog import is_builtin
from forecasting.models.conformance import (
    MODEL_CHECKS,
    SEASON,
    Check,
    CheckResult,
    ConformanceFailure,
    demand_type,
    instances,
    kit_series,
    n_obs_for,
    run_checks,
)
from forecasting.models.sandbox import TIMED_OUT, sandboxed
from forecasting.training.fitting import raw_forecast
from forecasting.training.isolation import (
    IsolatedFailure,
    IsolatedModel,
    requested_lengths,
    run_isolated,
)
from forecasting.training.plan import Candidate, IsolationLimits, TrainingPlan
from forecasting.training.selection_step import train_batch

KIT_VERSION = "2"  # bump when a check changes: cached verdicts are then recomputed
BACKTEST_HORIZON = 4
KIT_LIMITS = IsolationLimits(timeout_seconds=120.0, memory_limit_mb=4096)
KIT_STARTUP_SECONDS = 60.0  # a child's start-up (imports) may take this long, or the per-check timeout
MAX_LOST_CHECKS_IN_A_ROW = 2


def kit_plan(model: ForecastModel, isolation: IsolationLimits | None = None) -> TrainingPlan:
    """A real training plan (two backtest windows, calibrated quantiles) with ``model`` as its only candidate."""
    settings = Settings(
        forecast={"horizon": BACKTEST_HORIZON, "season_length": SEASON, "quantiles": [0.1, 0.5, 0.9]},
        backtest={"n_windows": 2, "min_train_share": 0.2},
        ensemble={"enabled": False},
    )
    candidate = Candidate(type(model).__name__, model, isolation)
    return TrainingPlan.from_settings(settings, candidates=(candidate,), fallbacks=())


def check_real_backtest(model_class: type[ForecastModel]) -> None:
    for model in instances(model_class):
        kind = demand_type(model_class)
        y = kit_series(n_obs_for(model), seed=3, kind=kind)
        panel = pd.DataFrame({ID: "kit", "ds": pd.date_range("2020-01-05", periods=y.size, freq="W-SUN"), "y": y})
        lifecycle = pd.DataFrame({ID: ["kit"], "lifecycle": [kind],
                                  "demand_class": ["intermittent" if kind == "intermittent" else "smooth"]})
        plan = kit_plan(model)
        result = train_batch(panel, lifecycle, plan, "W-SUN")
        ledger = result.ledger.iloc[0].to_dict()
        if ledger.get("failures"):
            raise ConformanceFailure(f"failed in a real backtest: {ledger['failures']}")
        label = plan.candidates[0].label
        if (ledger.get("status"), ledger.get("model")) != ("ok", label):
            raise ConformanceFailure(f"was not used after its backtest: status {ledger.get('status')}, model {ledger.get('model')}")
        scores = result.scores
        if len(scores) < 1 or not np.isfinite(scores["scaled_quantile_loss"]).all():
            raise ConformanceFailure(f"the backtest scored {len(scores)} windows")


def check_runs_isolated(model_class: type[ForecastModel]) -> None:
    model = next(iter(instances(model_class)))
    kind = demand_type(model_class)
    plan = kit_plan(model, KIT_LIMITS)
    series = {f"s{seed}": (kit_series(n_obs_for(model), seed=seed, kind=kind), kind) for seed in (4, 5)}
    outcomes = run_isolated(plan, series)
    candidate = plan.candidates[0]
    for uid, (y, _) in series.items():
        for length in requested_lengths(IsolatedModel(candidate, True, False), y.size, kind, plan):
            found = outcomes[uid].get(candidate.label, {}).get(length)
            if isinstance(found, IsolatedFailure) or found is None:
                raise ConformanceFailure(f"failed in a child process: {found}")
            expected = raw_forecast(
                model, y[:length], plan.horizon, plan.quantiles, plan.fit_time_limit, plan.capped_history(candidate)
            )
            for q in plan.quantiles:
                if not np.allclose(found[q], expected[q], rtol=1e-6, atol=1e-9, equal_nan=True):
                    raise ConformanceFailure(f"forecasts in a child process differ from in-process ones (quantile {q})")


def _builtin_reason(model_class: type[ForecastModel]) -> str:
    return "built-ins run in-process" if is_builtin(model_class) else ""


PIPELINE_CHECKS: tuple[Check, ...] = (
    Check("real_backtest", "is scored and used in a real backtest through TrainingPlan and train_batch", check_real_backtest),
    Check("runs_isolated", "forecasts in a child process equal in-process ones", check_runs_isolated, _builtin_reason),
)
KIT: tuple[Check, ...] = (*MODEL_CHECKS, *PIPELINE_CHECKS)


def check_model(model_class: type[ForecastModel]) -> list[CheckResult]:
    """Every check of the kit on ``model_class``, in this process (trusted code, a team's own tests)."""
    return run_checks(model_class, KIT)


def check_sandboxed(name: str, limits: IsolationLimits) -> list[CheckResult]:
    """Every check of the kit on the model registered as ``name``, in sandboxed child processes.

    The same sandbox as training (``forecasting.models.sandbox``): each check gets
    ``limits.timeout_seconds`` and the child ``limits.memory_limit_mb``. A check during
    which the child dies or hangs fails with that reason and the kit goes on in a fresh
    child; after ``MAX_LOST_CHECKS_IN_A_ROW`` such checks in a row the rest fail as not run.
    """
    results: list[CheckResult] = []
    lost_in_a_row = 0
    while len(results) < len(KIT):
        done, lost = _kit_child(name, len(results), limits)
        results += done
        if lost is None:
            break
        if lost.check == "":  # the model does not load in a child: nothing can be checked
            results += [CheckResult(check.name, "fail", lost.reason) for check in KIT[len(results):]]
            break
        results.append(lost)
        lost_in_a_row = lost_in_a_row + 1 if not done else 1
        if lost_in_a_row >= MAX_LOST_CHECKS_IN_A_ROW:
            reason = f"not run: the plug-in's process died or hung in {lost_in_a_row} checks in a row"
            results += [CheckResult(check.name, "fail", reason) for check in KIT[len(results):]]
    return results


def _kit_child(name: str, first: int, limits: IsolationLimits) -> tuple[list[CheckResult], CheckResult | None]:
    """Run the kit from check ``first`` in one child: its results, and the check it lost (None: none)."""
    command = [sys.executable, "-m", "forecasting.activation.kit_child", name, str(first)]
    results: list[CheckResult] = []
    with sandboxed(command, limits.memory_limit_mb) as child:
        ready = False
        while True:
            current = KIT[first + len(results)].name if first + len(results) < len(KIT) else ""
            allowance = limits.timeout_seconds if ready else max(KIT_STARTUP_SECONDS, limits.timeout_seconds)
            line = child.next_line(allowance)
            if line is TIMED_OUT or line is None:
                if line is None:
                    ended = child.exit()
                    how = ended.describe() if ended else "it closed its output"
                    what = f"the plug-in's process died ({how})"
                else:
                    what = f"no result within {allowance:g} s (the plug-in's process was killed)"
                tail = [s.strip() for s in child.stderr_tail(2048).splitlines() if s.strip()]
                detail = f"; stderr: {tail[-1][:150]}" if tail and line is None else ""
                if not ready:
                    return results, CheckResult("", "fail", f"the plug-in cannot be loaded in a child process: {what}{detail}")
                return results, CheckResult(current, "fail", f"{what}{detail}")
            try:
                record = json.loads(str(line))
            except ValueError:
                return results, CheckResult(current, "fail", f"unreadable output from the child: {str(line)[:100]!r}")
            if "fatal" in record:
                return results, CheckResult("", "fail", f"the plug-in cannot be loaded in a child process: {record['fatal']}")
            if "ready" in record:
                ready = True
            elif "check" in record:
                results.append(CheckResult(record["check"], record["status"], record["reason"], record["seconds"]))
            elif "done" in record:
                return results, None


def parametrize_with_checks(model_classes: Sequence[type[ForecastModel]]) -> Any:
    """A ``pytest.mark.parametrize`` over (model_class, check) for every applicable check of the kit."""
    import pytest  # a test-time helper: pytest is not a runtime dependency

    cases = [(cls, check) for cls in model_classes for check in KIT if not check.not_applicable(cls)]
    ids = [f"{cls.__name__}-{check.name}" for cls, check in cases]
    return pytest.mark.parametrize(("model_class", "check"), cases, ids=ids)
