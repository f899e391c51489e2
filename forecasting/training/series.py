"""Train one series: backtest every eligible candidate, select, refit, gate, fall back.

Every candidate runs under a wall-clock limit and inside its own try/except, so a
failing model costs that series that candidate only; the failure is recorded with
the series and the model. Plug-in candidates (those with ``isolation`` limits) are
fitted in child processes beforehand (``training.isolation``); here their forecasts
are looked up, and their failures raised, at the same points as a built-in's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from forecasting.data.contract import (
    STATUS_ENDED,
    STATUS_FALLBACK,
    STATUS_NEW,
    STATUS_OK,
)
from forecasting.data.lifecycle import ENDED, NEW
from forecasting.evaluation.losses import (
    interval_coverage,
    mase,
    scale_denominator,
    scaled_quantile_loss,
)
from forecasting.evaluation.quality import quality_gate
from forecasting.evaluation.selection import (
    ENSEMBLE_LABEL,
    keep_previous,
    median_ensemble,
    rank_candidates,
    top_k_members,
)
from forecasting.evaluation.weighted_ensemble import (
    WEIGHTED_LABEL,
    combine,
    cross_fitted,
    format_weights,
)
from forecasting.evaluation.windows import Window, backtest_windows
from forecasting.models.base import HistoryTooShortError
from forecasting.training.fitting import QuantileForecast, forecast_quantiles
from forecasting.training.isolation import (
    SeriesOutcomes,
    isolated_forecast,
    isolated_models,
    run_isolated,
)
from forecasting.training.plan import Candidate, TrainingPlan

logger = logging.getLogger(__name__)

@dataclass
class SeriesResult:
    """Everything one series produces: its ledger entry, forecast, scores and backtest."""

    ledger: dict[str, Any]
    forecast: QuantileForecast | None = None
    scores: list[dict[str, Any]] = field(default_factory=list)
    backtest: list[dict[str, Any]] = field(default_factory=list)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()[:300]


def _forecast(candidate: Candidate, y: np.ndarray, plan: TrainingPlan, isolated: SeriesOutcomes) -> QuantileForecast:
    """Fit on ``y`` (capped for expensive models) and return every quantile, under the time limit."""
    if candidate.precomputed:
        return isolated_forecast(isolated, candidate.label, y.size)
    return forecast_quantiles(
        candidate.model, y, plan.horizon, plan.quantiles, plan.conformal_windows, plan.fit_time_limit,
        plan.capped_history(candidate), candidate.label,
    )


@dataclass
class _Backtest:
    """Per-candidate forecasts for each window, and the windows' scores."""

    forecasts: dict[str, list[QuantileForecast]] = field(default_factory=dict)
    losses: dict[str, list[float]] = field(default_factory=dict)

    def mean_losses(self) -> dict[str, float]:
        return {label: float(np.mean(values)) for label, values in self.losses.items()}


def _score(y: np.ndarray, window: Window, forecast: QuantileForecast, plan: TrainingPlan) -> dict[str, float]:
    actual = y[window.test_slice]
    scale = scale_denominator(y[: window.train_end], m=1)
    lower, upper = forecast[plan.quantiles[0]], forecast[plan.quantiles[-1]]
    return {
        "scaled_quantile_loss": scaled_quantile_loss(actual, forecast, scale),
        "mase": mase(actual, forecast[0.5], scale),
        "coverage": interval_coverage(actual, lower, upper) if len(plan.quantiles) > 1 else np.nan,
    }


def _run_backtest(
    unique_id: str,
    y: np.ndarray,
    lifecycle: str,
    plan: TrainingPlan,
    failures: list[str],
    isolated: SeriesOutcomes,
    skipped: list[str] | None = None,
) -> tuple[_Backtest, list[Window]]:
    windows = backtest_windows(y.size, plan.horizon, plan.n_windows, plan.step)
    result = _Backtest()
    # Cheap candidates first: their first-window losses decide whether an expensive one goes on.
    for candidate in sorted(plan.candidates, key=lambda c: c.expensive and plan.skip_expensive_margin is not None):
        if not plan.eligible(candidate, lifecycle, windows[0].train_end):
            continue
        try:
            per_window = [_forecast(candidate, y[: windows[0].train_end], plan, isolated)]
            if _clearly_beaten(candidate, y, windows[0], per_window[0], result, plan):
                if skipped is not None:
                    skipped.append(candidate.label)
                continue
            per_window += [_forecast(candidate, y[: w.train_end], plan, isolated) for w in windows[1:]]
            if not all(np.isfinite(values).all() for f in per_window for values in f.values()):
                raise ValueError("non-finite backtest forecast")
        except HistoryTooShortError:
            continue
        except Exception as exc:  # any model error costs this series this candidate only
            logger.warning("series %s model %s backtest failed: %s", unique_id, candidate.label, _describe(exc))
            failures.append(f"{candidate.label} backtest: {_describe(exc)}")
            continue
        result.forecasts[candidate.label] = per_window
        result.losses[candidate.label] = [
            _score(y, w, f, plan)["scaled_quantile_loss"] for w, f in zip(windows, per_window, strict=True)
        ]
    return result, windows


def _clearly_beaten(
    candidate: Candidate, y: np.ndarray, first: Window, forecast: QuantileForecast, result: _Backtest, plan: TrainingPlan
) -> bool:
    """An expensive candidate whose first-window loss exceeds the best cheap one's by the margin."""
    margin = plan.skip_expensive_margin
    if margin is None or not candidate.expensive or not result.losses or len(plan.candidates) < 2:
        return False
    cheap = {c.label for c in plan.candidates if not c.expensive}
    first_losses = [losses[0] for label, losses in result.losses.items() if label in cheap and np.isfinite(losses[0])]
    if not first_losses:
        return False
    best_cheap = min(first_losses)
    loss = _score(y, first, forecast, plan)["scaled_quantile_loss"]
    return bool(np.isfinite(loss) and loss > best_cheap * (1.0 + margin))


def _add_ensemble(backtest: _Backtest, y: np.ndarray, windows: list[Window], plan: TrainingPlan) -> list[str]:
    members = top_k_members(rank_candidates(backtest.mean_losses(), plan.candidate_order), plan.ensemble_top_k)
    if members:
        per_window = [median_ensemble([backtest.forecasts[m][i] for m in members]) for i in range(len(windows))]
        backtest.forecasts[ENSEMBLE_LABEL] = per_window
        backtest.losses[ENSEMBLE_LABEL] = [
            _score(y, w, f, plan)["scaled_quantile_loss"] for w, f in zip(windows, per_window, strict=True)
        ]
    return members


def _add_weighted_ensemble(backtest: _Backtest, y: np.ndarray, windows: list[Window], plan: TrainingPlan) -> dict[str, float]:
    """The cross-fitted weighted ensemble (``evaluation.weighted_ensemble``); its weights for the refit."""
    singles = {label: backtest.forecasts[label] for label in plan.candidate_order if label in backtest.forecasts}
    if plan.weighted_rounds < 1 or len(windows) < 2 or len(singles) < 2:
        return {}
    actuals = [y[w.test_slice] for w in windows]
    scales = [scale_denominator(y[: w.train_end], m=1) for w in windows]
    per_window, weights = cross_fitted(singles, actuals, scales, plan.weighted_rounds)
    backtest.forecasts[WEIGHTED_LABEL] = per_window
    backtest.losses[WEIGHTED_LABEL] = [
        _score(y, w, f, plan)["scaled_quantile_loss"] for w, f in zip(windows, per_window, strict=True)
    ]
    return weights


def _rows(
    unique_id: str, y: np.ndarray, ds: np.ndarray, windows: list[Window], backtest: _Backtest, plan: TrainingPlan
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    scores, rows = [], []
    for label, per_window in backtest.forecasts.items():
        for window, forecast in zip(windows, per_window, strict=True):
            cutoff = ds[window.train_end - 1]
            scores.append({"unique_id": unique_id, "candidate": label, "cutoff": cutoff, **_score(y, window, forecast, plan)})
            test_ds = ds[window.test_slice]
            for step in range(window.horizon):
                row = {"unique_id": unique_id, "candidate": label, "cutoff": cutoff, "ds": test_ds[step],
                       "y": y[window.train_end + step]}
                row.update({q: forecast[q][step] for q in plan.quantiles})
                rows.append(row)
    return scores, rows


def _refit(
    label: str, members: list[str], y: np.ndarray, plan: TrainingPlan, isolated: SeriesOutcomes, weights: dict[str, float]
) -> QuantileForecast:
    # A candidate wins over a fallback of the same label: refit what was backtested.
    by_label = {c.label: c for c in (*plan.fallbacks, *plan.candidates)}
    if label == WEIGHTED_LABEL:
        return combine({m: _forecast(by_label[m], y, plan, isolated) for m in weights}, weights)
    if label == ENSEMBLE_LABEL:
        return median_ensemble([_forecast(by_label[m], y, plan, isolated) for m in members])
    return _forecast(by_label[label], y, plan, isolated)


def _first_passing(
    unique_id: str,
    chain: list[str],
    members: list[str],
    y: np.ndarray,
    plan: TrainingPlan,
    failures: list[str],
    isolated: SeriesOutcomes,
    weights: dict[str, float],
) -> tuple[str | None, QuantileForecast | None, list[str], str | None]:
    """Walk the fallback chain; return (model, forecast, repairs, why the first choice failed)."""
    first_failure = None
    gate_history = y[-plan.history_cap :]
    for label in chain:
        try:
            forecast = _refit(label, members, y, plan, isolated, weights)
        except Exception as exc:
            reason = f"refit_failed: {label}: {_describe(exc)}"
        else:
            gate = quality_gate(forecast, gate_history, plan.explosion_factor)
            if gate.failure is None:
                return label, gate.quantiles, gate.repairs, first_failure
            reason = f"quality_gate: {label}: {gate.failure}"
        logger.warning("series %s model %s: %s", unique_id, label, reason)
        failures.append(reason)
        first_failure = first_failure or reason
    return None, None, [], first_failure


def train_series(
    unique_id: str,
    ds: np.ndarray,
    y: np.ndarray,
    lifecycle: str,
    plan: TrainingPlan,
    isolated: SeriesOutcomes | None = None,
    previous_winner: str | None = None,
) -> SeriesResult:
    """Backtest, select, refit and gate one series; never raises for model errors.

    ``isolated``: the plug-in candidates' forecasts for this series, computed in child
    processes for a whole batch (``training.batch``); when None they are computed here.
    ``previous_winner``: the champion version's model for this series (switching margin).
    """
    ledger: dict[str, Any] = {"unique_id": unique_id, "lifecycle": lifecycle, "n_obs": int(y.size)}
    if lifecycle == ENDED:
        return SeriesResult({**ledger, "status": STATUS_ENDED, "reason": "ended", "detail": "no recent demand"})
    if isolated is None:
        isolated = run_isolated(plan, {unique_id: (y, lifecycle)})[unique_id] if isolated_models(plan) else {}
    failures: list[str] = []
    skipped: list[str] = []
    scores: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    winner, members, ranking, weights, selection = None, [], [], {}, ""
    if lifecycle != NEW:
        backtest, windows = _run_backtest(unique_id, y, lifecycle, plan, failures, isolated, skipped)
        members = _add_ensemble(backtest, y, windows, plan)
        weights = _add_weighted_ensemble(backtest, y, windows, plan)
        ranking = rank_candidates(backtest.mean_losses(), [*plan.candidate_order, ENSEMBLE_LABEL, WEIGHTED_LABEL])
        ranking, selection = keep_previous(ranking, backtest.mean_losses(), previous_winner, plan.switching_margin)
        winner = ranking[0] if ranking else None
        scores, rows = _rows(unique_id, y, ds, windows, backtest, plan)
    fallback_labels = [c.label for c in plan.fallbacks if c.label not in ranking]
    model, forecast, repairs, why = _first_passing(
        unique_id, [*ranking, *fallback_labels], members, y, plan, failures, isolated, weights
    )
    if model is None:
        raise RuntimeError(f"series {unique_id}: every model of the fallback chain failed: {'; '.join(failures)}")
    if lifecycle == NEW:
        status, reason = STATUS_NEW, "short_history"
    elif model == winner:
        status, reason = STATUS_OK, ""
    else:
        status = STATUS_FALLBACK
        reason = "no_candidate_backtested" if winner is None else why.split(":")[0]
    ledger.update(
        status=status,
        reason=reason,
        detail=why or "",
        winner=winner or "",
        model=model,
        ensemble_members=_members(model, members, weights),
        n_candidates=len(ranking),
        selection=selection,
        repairs=",".join(repairs),
        failures=" | ".join(failures),
        cost_skipped=",".join(skipped),
    )
    return SeriesResult(ledger=ledger, forecast=forecast, scores=scores, backtest=rows)


def _members(model: str, members: list[str], weights: dict[str, float]) -> str:
    if model == WEIGHTED_LABEL:
        return format_weights(weights)
    return ",".join(members) if model == ENSEMBLE_LABEL else ""


def series_arrays(history: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-series (ds, y) arrays from a sorted long frame."""
    arrays = {}
    ids = history["unique_id"].to_numpy()
    ds = history["ds"].to_numpy()
    y = history["y"].to_numpy(dtype=np.float64)
    boundaries = np.flatnonzero(ids[1:] != ids[:-1]) + 1
    for start, end in zip(np.r_[0, boundaries], np.r_[boundaries, ids.size], strict=True):
        if end > start:
            arrays[str(ids[start])] = (ds[start:end], y[start:end])
    return arrays
