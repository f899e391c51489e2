"""Backtest a batch of series: the raw forecasts of every candidate at every origin (a Dask task).

This is the first of a shard's two steps. Per series, every eligible candidate (and every
fallback model) is forecast at each backtest cutoff of the series and for the future
(``training.backtest``), built-ins in this process, plug-ins in child processes (one per
plug-in for the whole batch, ``training.isolation``) and global models from the shard's
global step. Nothing is chosen here: the second step (``training.selection_step``)
calibrates, combines and selects over the whole shard, because calibration and the
ensemble's weights pool the evidence of many series. Any model error costs the series
that candidate (or that origin) only, and is recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from forecasting.data.contract import ID, TARGET, TIME, quantile_label
from forecasting.data.lifecycle import ENDED
from forecasting.evaluation.losses import scale_denominator
from forecasting.models import array_baselines
from forecasting.training.backtest import (
    QuantileForecast,
    candidate_forecasts,
    finite,
    raw_quantiles,
)
from forecasting.training.isolation import IsolatedFailure, SeriesOutcomes, run_isolated
from forecasting.training.plan import Candidate, TrainingPlan

logger = logging.getLogger(__name__)

INTERMITTENT_CLASSES = ("intermittent", "lumpy")  # high ADI: the intermittent demand type


def demand_type(demand_class: str) -> str:
    """The candidates' demand type of a series: 'intermittent' for high-ADI classes, else 'smooth'."""
    return "intermittent" if demand_class in INTERMITTENT_CLASSES else "smooth"


@dataclass
class BatchRaw:
    """A batch's raw forecasts (one row per series, candidate, origin length and step) and notes."""

    raw: pd.DataFrame
    notes: pd.DataFrame = field(default_factory=pd.DataFrame)  # unique_id, failures, cost_skipped

    @classmethod
    def concat(cls, parts: list[BatchRaw]) -> BatchRaw:
        raws = [p.raw for p in parts if not p.raw.empty]
        notes = [p.notes for p in parts if not p.notes.empty]
        return cls(
            pd.concat(raws, ignore_index=True) if raws else (parts[0].raw if parts else pd.DataFrame()),
            pd.concat(notes, ignore_index=True) if notes else pd.DataFrame(columns=[ID, "failures", "cost_skipped"]),
        )


def raw_columns(quantiles: tuple[float, ...]) -> list[str]:
    return [ID, "candidate", "length", "step", *(quantile_label(q) for q in quantiles)]


def series_arrays(history: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-series (ds, y) arrays from a sorted long frame."""
    arrays = {}
    ids = history[ID].to_numpy()
    ds = history[TIME].to_numpy()
    y = history[TARGET].to_numpy(dtype=np.float64)
    boundaries = np.flatnonzero(ids[1:] != ids[:-1]) + 1
    for start, end in zip(np.r_[0, boundaries], np.r_[boundaries, ids.size], strict=True):
        if end > start:
            arrays[str(ids[start])] = (ds[start:end], y[start:end])
    return arrays


def models_of(plan: TrainingPlan) -> list[Candidate]:
    """Candidates, then the fallback models that are not candidates (a label runs once)."""
    seen: dict[str, Candidate] = {}
    for candidate in (*plan.candidates, *plan.fallbacks):
        seen.setdefault(candidate.label, candidate)
    return list(seen.values())


def _precomputed(
    outcomes: SeriesOutcomes, candidate: Candidate, lengths: list[int], quantiles: tuple[float, ...]
) -> tuple[dict[int, QuantileForecast], dict[int, str]]:
    forecasts, failures = {}, {}
    found = outcomes.get(candidate.label, {})
    wanted = raw_quantiles(candidate.model, quantiles)
    for length in lengths:
        outcome = found.get(length)
        if outcome is None:
            failures[length] = "missing: no forecast from the isolated or global step"
        elif isinstance(outcome, IsolatedFailure):
            failures[length] = f"{outcome.kind}: {outcome.message}"
        elif not finite(outcome, wanted):
            failures[length] = "ValueError: non-finite forecast"
        else:
            forecasts[length] = outcome
    return forecasts, failures


def _first_window_error(forecast: QuantileForecast, y: np.ndarray, end: int, horizon: int) -> float:
    """Scaled absolute error of the median on the window after ``end`` (the cost rule's yardstick)."""
    actual = y[end : end + horizon]
    return float(np.mean(np.abs(actual - forecast[0.5])) / scale_denominator(y[:end], m=1))


def backtest_series(
    unique_id: str, y: np.ndarray, demand: str, plan: TrainingPlan, outcomes: SeriesOutcomes,
    vectorised: frozenset[str] = frozenset(),
) -> tuple[dict[str, dict[int, QuantileForecast]], list[str], list[str]]:
    """Raw forecasts per candidate label and history length; the failures and cost-skipped labels.

    ``vectorised``: labels whose forecasts are already in ``outcomes`` (``vectorised_outcomes``).
    """
    ends = [w.train_end for w in plan.windows(y.size)]
    forecasts: dict[str, dict[int, QuantileForecast]] = {}
    failures: list[str] = []
    skipped: list[str] = []
    cheap_errors: list[float] = []
    racing = plan.skip_expensive_margin is not None
    # Cheap candidates first: under the cost rule their first-window errors decide whether an expensive one goes on.
    for candidate in sorted(models_of(plan), key=lambda c: racing and c.expensive):
        if not plan.eligible(candidate, demand, y.size):
            continue
        lengths = [e for e in ends if plan.eligible(candidate, demand, e)]
        if racing and candidate.expensive and lengths and cheap_errors:
            first, _ = _run(candidate, y, lengths[:1], plan, outcomes, future=False, vectorised=vectorised)
            error = _first_window_error(first[lengths[0]], y, lengths[0], plan.horizon) if first else np.inf
            if error > min(cheap_errors) * (1.0 + plan.skip_expensive_margin):
                skipped.append(candidate.label)
                continue
        found, failed = _run(candidate, y, lengths, plan, outcomes, vectorised=vectorised)
        if racing and not candidate.expensive and lengths and lengths[0] in found:
            cheap_errors.append(_first_window_error(found[lengths[0]], y, lengths[0], plan.horizon))
        for length, message in failed.items():
            if not message.startswith("too_short"):
                where = "future" if length == y.size else f"cutoff {length}"
                logger.warning("series %s model %s at %s: %s", unique_id, candidate.label, where, message)
                failures.append(f"{candidate.label} {where}: {message}"[:300])
        if found:
            forecasts[candidate.label] = found
    return forecasts, failures, skipped


def _run(
    candidate: Candidate, y: np.ndarray, lengths: list[int], plan: TrainingPlan, outcomes: SeriesOutcomes,
    future: bool = True, vectorised: frozenset[str] = frozenset(),
) -> tuple[dict[int, QuantileForecast], dict[int, str]]:
    """Raw forecasts of ``candidate`` at the cutoffs ``lengths``, and for the future if ``future``."""
    if candidate.precomputed or candidate.label in vectorised:
        return _precomputed(outcomes, candidate, [*lengths, y.size] if future else lengths, plan.quantiles)
    return candidate_forecasts(
        candidate.model, y, lengths, plan.horizon, plan.quantiles, plan.capped_history(candidate),
        plan.moves_forward(candidate), plan.fit_time_limit, candidate.label, future,
    )


def vectorised_candidates(plan: TrainingPlan) -> list[Candidate]:
    """The in-process candidates computed for a whole batch at once (``models.array_baselines``)."""
    return [c for c in models_of(plan)
            if not c.precomputed and plan.capped_history(c) is None and array_baselines.supports(c.model)]


def vectorised_outcomes(
    plan: TrainingPlan, series: Mapping[str, tuple[np.ndarray, str]]
) -> tuple[dict[str, SeriesOutcomes], frozenset[str]]:
    """Raw forecasts of the vectorised candidates for every series (y, demand type) at every origin.

    The same origins as the per-series path: each backtest cutoff the candidate is eligible at,
    and the future. Per series and label, by history length, like a precomputed candidate's.
    """
    candidates = vectorised_candidates(plan)
    found: dict[str, SeriesOutcomes] = {uid: {} for uid in series}
    if not candidates:
        return found, frozenset()
    ids = list(series)
    ys = [series[uid][0] for uid in ids]
    ends = [[w.train_end for w in plan.windows(y.size)] for y in ys]
    for candidate in candidates:
        pairs = []
        for i, uid in enumerate(ids):
            y, demand = series[uid]
            if plan.eligible(candidate, demand, y.size):
                pairs.extend((i, end) for end in [*ends[i], y.size] if end == y.size or plan.eligible(candidate, demand, end))
        if not pairs:
            continue
        values = array_baselines.batch_forecasts(candidate.model, ys, pairs, plan.horizon, plan.quantiles)
        for k, (i, end) in enumerate(pairs):
            found[ids[i]].setdefault(candidate.label, {})[end] = {q: values[q][k] for q in plan.quantiles}
    return found, frozenset(c.label for c in candidates)


def backtest_batch(
    history: pd.DataFrame,
    lifecycle: pd.DataFrame,
    plan: TrainingPlan,
    precomputed: Mapping[str, SeriesOutcomes] | None = None,
) -> BatchRaw:
    """Raw forecasts of every series of ``history`` (sorted long frame) that has not ended.

    ``precomputed``: per series, the forecasts of the shard's global candidates (``training.global_step``).
    """
    info = lifecycle.set_index(ID)
    arrays = series_arrays(history)
    active = {uid: arr for uid, arr in arrays.items() if info.at[uid, "lifecycle"] != ENDED}
    demands = {uid: demand_type(str(info.at[uid, "demand_class"])) for uid in active}
    # Plug-in candidates first, for the whole batch: one child process per plug-in, not per series.
    isolated = run_isolated(plan, {uid: (y, demands[uid]) for uid, (_, y) in active.items()})
    for uid, outcomes in (precomputed or {}).items():
        if uid in isolated:
            isolated[uid].update(outcomes)
    # Cheap baselines for the whole batch at once, with array operations (the same forecasts).
    arrays, vectorised = vectorised_outcomes(plan, {uid: (y, demands[uid]) for uid, (_, y) in active.items()})
    for uid, outcomes in arrays.items():
        isolated.setdefault(uid, {}).update(outcomes)
    labels = [quantile_label(q) for q in plan.quantiles]
    columns: dict[str, list] = {c: [] for c in raw_columns(plan.quantiles)}
    notes = []
    steps = np.arange(1, plan.horizon + 1)
    for uid, (_, y) in active.items():
        forecasts, failures, skipped = backtest_series(uid, y, demands[uid], plan, isolated.get(uid, {}), vectorised)
        for label, by_length in forecasts.items():
            for length, forecast in by_length.items():
                columns[ID].extend([uid] * plan.horizon)
                columns["candidate"].extend([label] * plan.horizon)
                columns["length"].extend([length] * plan.horizon)
                columns["step"].extend(steps.tolist())
                for q, name in zip(plan.quantiles, labels, strict=True):
                    columns[name].extend(np.asarray(forecast[q], dtype=np.float64).tolist())
        notes.append({ID: uid, "failures": " | ".join(failures), "cost_skipped": ",".join(skipped)})
    raw = pd.DataFrame(columns).astype({"length": "int64", "step": "int64"})
    return BatchRaw(raw, pd.DataFrame(notes, columns=[ID, "failures", "cost_skipped"]))
