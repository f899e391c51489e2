"""Choose and calibrate over a shard: the second of a shard's two steps.

The raw forecasts of every batch of a shard (``training.batch``) are cut into pools of
series that share a demand type. Per pool, ``evaluation.procedure`` calibrates every
candidate, builds the pooled ensemble and scores them forward-only on every backtest
window; each series then keeps the ensemble (the default) or moves to a single candidate
its own windows clearly prefer. The chosen forecast goes through the quality gate; when
it fails, the chain goes on to the ensemble, the other candidates by backtest loss, then
the fallback models, all calibrated the same way. A series without any backtest window
(a short history) gets the pooled ensemble with the pool's calibration, status ``new``.

Besides the ledger, forecasts, per-window scores and backtest forecasts, a shard writes
what it learned: per pool the ensemble weights and the out-of-sample estimate of the
whole procedure, per candidate and horizon step the calibration and its coverage.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecasting.data.contract import (
    ID,
    STATUS_ENDED,
    STATUS_NEW,
    STATUS_OK,
    quantile_label,
)
from forecasting.data.forecast_rows import forecast_rows
from forecasting.data.lifecycle import ENDED
from forecasting.evaluation.calibration import coverage_by_step
from forecasting.evaluation.fallback import Failure, FallbackChain, chain_labels
from forecasting.evaluation.losses import scale_denominator
from forecasting.evaluation.procedure import (
    ENSEMBLE,
    Evidence,
    Pool,
    choose,
    forward_evidence,
    origin_features,
    out_of_sample,
)
from forecasting.evaluation.weighted_ensemble import format_weights
from forecasting.evaluation.windows import window_lag
from forecasting.training.batch import (
    BatchRaw,
    backtest_batch,
    demand_type,
    models_of,
    series_arrays,
)
from forecasting.training.isolation import SeriesOutcomes
from forecasting.training.plan import TrainingPlan

logger = logging.getLogger(__name__)


@dataclass
class ShardResult:
    """Frames a shard produces (``finalize`` concatenates them over the shards)."""

    forecasts: pd.DataFrame
    ledger: pd.DataFrame
    scores: pd.DataFrame
    backtest: pd.DataFrame
    calibration: pd.DataFrame  # per pool, candidate and horizon step: coverage before and after calibration
    pools: pd.DataFrame  # per pool: series, ensemble weights, calibrators, out-of-sample estimate
    candidates: pd.DataFrame  # every candidate's calibrated forecast of every series (the alternatives)

    FRAMES = ("forecasts", "ledger", "scores", "backtest", "calibration", "pools", "candidates")

    @classmethod
    def concat(cls, parts: Sequence[ShardResult]) -> ShardResult:
        return cls(**{name: concat_frames([getattr(p, name) for p in parts]) for name in cls.FRAMES})


def concat_frames(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """The frames one below the other (empty ones left out, so that their columns' types do not widen)."""
    non_empty = [f for f in frames if not f.empty]
    if non_empty:
        return pd.concat(non_empty, ignore_index=True)
    return frames[0] if frames else pd.DataFrame()


@dataclass
class _Series:
    uid: str
    ds: np.ndarray
    y: np.ndarray
    lifecycle: str
    demand: str


def _slot_of(length: np.ndarray, n_obs: np.ndarray, plan: TrainingPlan) -> np.ndarray:
    """Slot of each raw row: 0 for the future, k for the k-th latest backtest window, -1 for none."""
    back = n_obs - plan.horizon - length
    slot = np.where(back % plan.step == 0, back // plan.step + 1, -1)
    slot = np.where(length == n_obs, 0, slot)
    return np.where((slot >= 0) & (slot <= plan.n_windows), slot, -1)


def _pool(series: list[_Series], raw: pd.DataFrame, labels: list[str], plan: TrainingPlan) -> Pool:
    """The pool's arrays (see ``evaluation.procedure.Pool``) from its series and their raw rows."""
    n, slots, h, nq = len(series), plan.n_windows + 1, plan.horizon, len(plan.quantiles)
    index = {s.uid: i for i, s in enumerate(series)}
    label_index = {label: j for j, label in enumerate(labels)}
    values = np.full((len(labels), n, slots, h, nq), np.nan)
    rows = raw[raw[ID].isin(index) & raw["candidate"].isin(label_index)]
    if not rows.empty:
        i = rows[ID].map(index).to_numpy()
        n_obs = np.array([series[k].y.size for k in i])
        slot = _slot_of(rows["length"].to_numpy(), n_obs, plan)
        keep = slot >= 0
        j = rows["candidate"].map(label_index).to_numpy()
        step = rows["step"].to_numpy() - 1
        quantiles = rows[[quantile_label(q) for q in plan.quantiles]].to_numpy(dtype=np.float64)
        values[j[keep], i[keep], slot[keep], step[keep]] = quantiles[keep]
    actual = np.full((n, slots, h), np.nan)
    spread = np.ones((n, slots))
    nonneg = np.zeros((n, slots), dtype=bool)
    volatility = np.full((n, slots), np.nan)
    for i, s in enumerate(series):
        ends = {0: s.y.size}
        for w in plan.windows(s.y.size):
            ends[(s.y.size - h - w.train_end) // plan.step + 1] = w.train_end
        for slot, end in ends.items():
            spread[i, slot], nonneg[i, slot], volatility[i, slot] = origin_features(s.y[:end])
            if slot > 0:
                actual[i, slot] = s.y[end : end + h]
    # The ensemble's members: the candidates meant for the pool's demand type that forecast any of its series.
    demand = series[0].demand
    forecasting = np.isfinite(values[:, :, 0, 0, 0]).any(axis=1)
    members = [label_index[c.label] for c in plan.candidates
               if plan.ensemble and demand in c.model.get_tag("demand_types") and forecasting[label_index[c.label]]]
    prior = [label_index[label] for label in plan.ensemble_prior if label in label_index and label_index[label] in members]
    return Pool(labels, values, actual, spread, nonneg, volatility, plan.quantiles, members, prior)


def _mean_losses(evidence: Evidence, i: int, labels: Sequence[str]) -> dict[str, float]:
    """A series' mean forward-only loss per label, for the labels it was scored with."""
    return {label: float(np.nanmean(evidence.losses[label][i])) for label in labels
            if np.isfinite(evidence.losses[label][i]).any()}


def _best_single(evidence: Evidence, singles: list[str]) -> list[str]:
    """Per series the single candidate with the lowest mean loss (config order breaks ties): the
    choice without an ensemble, or where the cost rule skipped the ensemble's members."""
    chosen = []
    for i in range(evidence.losses[singles[0]].shape[0]):
        means = _mean_losses(evidence, i, singles)
        available = [label for label in singles if _has_future(evidence, label, i)]
        chosen.append(min(means, key=lambda label: (means[label], singles.index(label))) if means
                      else (available or singles)[0])
    return chosen


def _ensemble_skipped(chosen: list[str], evidence: Evidence, skipped: list[set[str]]) -> set[int]:
    """The series whose choice is the ensemble but the cost rule skipped every member it weights
    (``skipped``: labels per series): their best single is the choice. The ensemble missing for a
    failure stays a fallback."""
    members = {label for label, weight in evidence.future.weights.items() if weight > 0}
    return {i for i, label in enumerate(chosen)
            if label == ENSEMBLE and members and members <= skipped[i] and not _has_future(evidence, ENSEMBLE, i)}


def _has_future(evidence: Evidence, label: str, i: int) -> bool:
    return bool(np.isfinite(evidence.forecasts[label][i, 0]).all())


def _chain(i: int, chosen: str, evidence: Evidence, singles: list[str], fallbacks: list[str], has_ensemble: bool) -> list[str]:
    """The order in which a series' forecasts are tried: the choice, the ensemble, singles by loss, fallbacks."""
    means = _mean_losses(evidence, i, singles)
    ranked = sorted(singles, key=lambda label: (means.get(label, np.inf), singles.index(label)))
    return chain_labels([chosen, *([ENSEMBLE] if has_ensemble else []), *ranked], fallbacks)


def _describe_choice(i: int, chosen: str, evidence: Evidence, slots: Sequence[int], ensemble_skipped: bool) -> str:
    default = evidence.losses[ENSEMBLE][i, list(slots)]
    scored = np.isfinite(default)
    if ensemble_skipped:
        own = evidence.losses[chosen][i]
        windows = int(np.isfinite(own).sum())
        loss = f", loss {np.nanmean(own):.3f} over {windows} windows" if windows else ""
        return f"best single: the cost rule skipped the ensemble's members{loss}"
    if chosen == ENSEMBLE or not scored.any():
        windowed = any(np.isfinite(losses[i]).any() for losses in evidence.losses.values())
        return "default" if windowed else "default (no backtest window)"
    own = evidence.losses[chosen][i, list(slots)][scored]
    wins = int((own < default[scored]).sum())
    return (f"evidence: loss {own.mean():.3f} vs ensemble {default[scored].mean():.3f} "
            f"over {int(scored.sum())} windows, better in {wins}")


def select_shard(
    raw: BatchRaw,
    history: pd.DataFrame,
    lifecycle: pd.DataFrame,
    plan: TrainingPlan,
    freq: str,
    shard: int = 0,
) -> ShardResult:
    """Calibrate, combine, select and gate every series of a shard from its raw forecasts."""
    info = lifecycle.set_index(ID)
    notes = raw.notes.set_index(ID) if not raw.notes.empty else pd.DataFrame(columns=["failures", "cost_skipped"])
    by_demand: dict[str, list[_Series]] = {}
    ledgers: list[dict] = []
    for uid, (ds, y) in series_arrays(history).items():
        cycle = str(info.at[uid, "lifecycle"])
        if cycle == ENDED:
            ledgers.append({ID: uid, "lifecycle": cycle, "n_obs": int(y.size), "status": STATUS_ENDED,
                            "reason": "ended", "detail": "no recent demand"})
            continue
        demand = demand_type(str(info.at[uid, "demand_class"]))
        by_demand.setdefault(demand, []).append(_Series(uid, ds, y, cycle, demand))
    labels = [c.label for c in models_of(plan)]
    parts = [_select_pool(series, raw.raw, labels, plan, freq, notes, shard) for series in by_demand.values()]
    result = ShardResult.concat(parts) if parts else _empty(plan)
    if ledgers:
        result.ledger = pd.concat([result.ledger, pd.DataFrame(ledgers)], ignore_index=True)
    return result


def _empty(plan: TrainingPlan) -> ShardResult:
    return ShardResult(*(pd.DataFrame() for _ in ShardResult.FRAMES))


def _select_pool(
    series: list[_Series],
    raw: pd.DataFrame,
    labels: list[str],
    plan: TrainingPlan,
    freq: str,
    notes: pd.DataFrame,
    shard: int,
) -> ShardResult:
    demand = series[0].demand
    pool = _pool(series, raw, labels, plan)
    evidence = forward_evidence(pool, window_lag(plan.horizon, plan.step), plan.ensemble_rounds, plan.prior_rounds)
    singles = [c.label for c in plan.candidates if demand in c.model.get_tag("demand_types")] or [plan.candidates[0].label]
    fallbacks = [c.label for c in plan.fallbacks]
    has_ensemble = bool(pool.members)
    slots = evidence.scored_slots
    if has_ensemble:
        chosen = choose(evidence.losses, singles, plan.selection_margin, plan.min_windows, slots)
        skipped = [set(filter(None, str(notes["cost_skipped"].get(s.uid, "") or "").split(","))) for s in series]
        instead = _ensemble_skipped(chosen, evidence, skipped)
        best = _best_single(evidence, singles) if instead else []
        chosen = [best[i] if i in instead else label for i, label in enumerate(chosen)]
    else:
        chosen, instead = _best_single(evidence, singles), set()
    estimate = out_of_sample(evidence.losses, singles, slots, plan.selection_margin, plan.min_windows) if has_ensemble else {}
    forecasts, ledgers = [], []
    for i, s in enumerate(series):
        choice, selection = chosen[i], _describe_choice(i, chosen[i], evidence, slots, i in instead)
        means = _mean_losses(evidence, i, [ENSEMBLE, *singles])
        ledger, forecast = _gate(i, s, choice, evidence, singles, fallbacks, has_ensemble, plan)
        scored = max(int(np.isfinite(losses[i]).sum()) for losses in evidence.losses.values())
        ledger.update(selection=selection, n_windows=scored, n_candidates=len(means),
                      ensemble_members=format_weights({m: w for m, w in evidence.future.weights.items() if w > 0})
                      if ledger.get("model") == ENSEMBLE else "",
                      failures=" | ".join(filter(None, [str(notes["failures"].get(s.uid, "") or ""), ledger.pop("gate_failures", "")])),
                      cost_skipped=str(notes["cost_skipped"].get(s.uid, "") or ""))
        ledgers.append(ledger)
        if forecast is not None:
            forecasts.append((s, forecast, ledger))
    shown = [*labels, ENSEMBLE] if has_ensemble else labels
    scores, backtest = _evidence_rows(series, evidence, shown, plan)
    return ShardResult(
        forecasts=_forecast_rows(forecasts, freq, plan) if forecasts else pd.DataFrame(),
        ledger=pd.DataFrame(ledgers),
        scores=scores,
        backtest=backtest,
        calibration=_calibration_rows(pool, evidence, shard, demand, plan),
        pools=pd.DataFrame([{
            "shard": shard, "demand_type": demand, "n_series": len(series),
            "n_scored_windows": len(slots),
            "weights": format_weights({m: round(w, 4) for m, w in evidence.future.weights.items() if w > 0}),
            "out_of_sample": json.dumps(estimate),
            "calibrators": json.dumps({label: c.describe() for label, c in evidence.future.calibrators.items()}),
        }]),
        candidates=_candidate_rows(series, evidence, shown, plan),
    )


def _gate(
    i: int, s: _Series, choice: str, evidence: Evidence, singles: list[str], fallbacks: list[str], has_ensemble: bool,
    plan: TrainingPlan,
) -> tuple[dict, dict[float, np.ndarray] | None]:
    """Walk the chain until a forecast passes the quality gate; the ledger entry and that forecast."""
    ledger: dict = {ID: s.uid, "lifecycle": s.lifecycle, "n_obs": int(s.y.size), "winner": choice}
    chain = FallbackChain(_chain(i, choice, evidence, singles, fallbacks, has_ensemble), s.y[-plan.history_cap:],
                          plan.explosion_factor)

    def forecast_of(label: str) -> dict[float, np.ndarray]:
        values = evidence.forecasts[label][i, 0]
        return {q: values[:, k] for k, q in enumerate(plan.quantiles)}

    gate = chain.walk(forecast_of)
    # The ledger's failures: the choice's own, and every forecast the gate refused (a link
    # without any forecast is expected further down the chain and not worth a warning).
    failures = []
    for failure in chain.failures:
        if failure.label == choice or not failure.no_forecast:
            logger.warning("series %s model %s: %s", s.uid, failure.label, _reason(failure))
            failures.append(_reason(failure))
    first_failure = _reason(chain.failures[0]) if chain.failures else ""
    if gate is None:
        ledger.update(status="quarantined", reason="all_models_failed", detail=" | ".join(failures)[:500], model="",
                      repairs="", gate_failures=" | ".join(failures))
        return ledger, None
    # no label scored on any window of the series: a short history (the ensemble alone may lack a
    # forecast of a series with windows, when the members it weights failed on it)
    no_evidence = not any(np.isfinite(losses[i]).any() for losses in evidence.losses.values())
    status = chain.status(new=no_evidence)
    reason = "short_history" if status == STATUS_NEW else "" if status == STATUS_OK else first_failure.split(":")[0]
    ledger.update(status=status, reason=reason, detail=first_failure, model=chain.current,
                  repairs=",".join(gate.repairs), gate_failures=" | ".join(failures))
    return ledger, gate.quantiles


def _reason(failure: Failure) -> str:
    """A failed link as the ledger names it: no forecast, or the gate's failure."""
    if failure.no_forecast:
        return f"no_forecast: {failure.label}"
    return f"quality_gate: {failure.label}: {failure.gate}"


def _forecast_rows(
    chosen: list[tuple[_Series, dict[float, np.ndarray], dict]], freq: str, plan: TrainingPlan
) -> pd.DataFrame:
    """The published rows of a pool's series (``chosen``: series, forecast, ledger entry), in one frame."""
    return forecast_rows(
        [s.uid for s, _, _ in chosen], [s.ds[-1] for s, _, _ in chosen], [forecast for _, forecast, _ in chosen],
        plan.quantiles, plan.horizon, freq,
        model=[ledger["model"] for _, _, ledger in chosen], status=[ledger["status"] for _, _, ledger in chosen],
    )


def _evidence_rows(series: list[_Series], evidence: Evidence, labels: list[str], plan: TrainingPlan) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-window scores and backtest forecasts of every scored (series, label, window).

    Rows in the order series, window (oldest first), label; built with array operations over
    the whole pool (one frame per kind, not one per row).
    """
    h, lower, upper = plan.horizon, 0, len(plan.quantiles) - 1
    names = [quantile_label(q) for q in plan.quantiles]
    median = plan.quantiles.index(0.5)
    index, slots, scales, actuals, dates, cutoffs = [], [], [], [], [], []
    for i, s in enumerate(series):
        ends = {(s.y.size - h - w.train_end) // plan.step + 1: w.train_end for w in plan.windows(s.y.size)}
        for slot, end in sorted(ends.items(), reverse=True):
            index.append(i)
            slots.append(slot)
            scales.append(scale_denominator(s.y[:end], m=1))
            actuals.append(s.y[end : end + h])
            dates.append(s.ds[end : end + h])
            cutoffs.append(s.ds[end - 1 : end])
    if not index or not labels:
        return pd.DataFrame(), pd.DataFrame()
    rows, where = np.asarray(index), np.asarray(slots)
    values = np.stack([evidence.forecasts[label][rows, where] for label in labels], axis=1)  # (R, L, h, nq)
    losses = np.stack([evidence.losses[label][rows, where] for label in labels], axis=1)  # (R, L)
    r, j = np.nonzero(np.isfinite(values).all(axis=(2, 3)) & np.isfinite(losses))
    if r.size == 0:
        return pd.DataFrame(), pd.DataFrame()
    ids = np.array([s.uid for s in series], dtype=object)[rows[r]]
    candidates = np.array(labels, dtype=object)[j]
    cutoff = np.concatenate(cutoffs)[r]
    actual = np.vstack(actuals)[r]  # (K, h)
    chosen = values[r, j]  # (K, h, nq)
    mase = np.mean(np.abs(actual - chosen[:, :, median]), axis=1) / np.asarray(scales, dtype=np.float64)[r]
    covered = (actual >= chosen[:, :, lower]) & (actual <= chosen[:, :, upper])
    coverage = covered.mean(axis=1) if upper > lower else np.full(r.size, np.nan)
    scores = pd.DataFrame({ID: ids, "candidate": candidates, "cutoff": cutoff,
                           "scaled_quantile_loss": losses[r, j], "mase": mase, "coverage": coverage})
    backtest = pd.DataFrame({ID: np.repeat(ids, h), "candidate": np.repeat(candidates, h),
                             "cutoff": np.repeat(cutoff, h), "ds": np.vstack(dates)[r].reshape(-1),
                             "y": actual.reshape(-1),
                             **{name: chosen[:, :, k].reshape(-1) for k, name in enumerate(names)}})
    return scores, backtest


def _candidate_rows(series: list[_Series], evidence: Evidence, labels: list[str], plan: TrainingPlan) -> pd.DataFrame:
    """Every label's calibrated forecast of the future, per series (what each alternative would publish)."""
    names = [quantile_label(q) for q in plan.quantiles]
    frames = []
    for label in labels:
        values = evidence.forecasts[label][:, 0]  # (n, h, nq)
        present = np.isfinite(values).all(axis=(1, 2))
        if not present.any():
            continue
        ids = np.repeat([s.uid for s, ok in zip(series, present, strict=True) if ok], plan.horizon)
        frame = pd.DataFrame(values[present].reshape(-1, len(names)), columns=names)
        frame.insert(0, "horizon", np.tile(np.arange(1, plan.horizon + 1, dtype=np.int64), int(present.sum())))
        frame.insert(0, "candidate", label)
        frame.insert(0, ID, ids)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _calibration_rows(pool: Pool, evidence: Evidence, shard: int, demand: str, plan: TrainingPlan) -> pd.DataFrame:
    """Per label and horizon step: forward-only coverage before and after calibration, and its count."""
    lower, upper, h, nq = 0, len(plan.quantiles) - 1, plan.horizon, len(plan.quantiles)
    slots = evidence.scored_slots
    actual = pool.actual[:, slots].reshape(-1, h)
    rows = []
    for label in evidence.future.calibrators:
        after, counts = coverage_by_step(evidence.forecasts[label][:, slots].reshape(-1, h, nq), actual, lower, upper)
        if label in pool.labels:
            before, _ = coverage_by_step(pool.raw[pool.labels.index(label)][:, slots].reshape(-1, h, nq), actual, lower, upper)
        else:
            before = np.full(h, np.nan)
        for step in range(h):
            if counts[step]:
                rows.append({"shard": shard, "demand_type": demand, "candidate": label, "step": step + 1,
                             "coverage": float(after[step]), "raw_coverage": float(before[step]),
                             "n_windows": int(counts[step])})
    return pd.DataFrame(rows, columns=["shard", "demand_type", "candidate", "step", "coverage", "raw_coverage", "n_windows"])


def train_batch(
    history: pd.DataFrame,
    lifecycle: pd.DataFrame,
    plan: TrainingPlan,
    freq: str,
    precomputed: Mapping[str, SeriesOutcomes] | None = None,
) -> ShardResult:
    """Both steps in this process for a small panel, as one shard: backtest, then choose."""
    raw = backtest_batch(history, lifecycle, plan, precomputed)
    return select_shard(raw, history, lifecycle, plan, freq)
