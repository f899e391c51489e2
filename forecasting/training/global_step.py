"""Global candidates: fitted across a shard's series, once per backtest cutoff and once for the future.

A global model (tag ``scope: global``) cannot run in the per-series loop. Here it is
fitted on the panel cut at each backtest cutoff (every series loses its last
``horizon + step * k`` observations, so window k is the same window
``evaluation.windows`` gives each series) and on the whole panel for the future.
Its forecasts, keyed by series, label and history length, are then looked up by
the per-series step exactly like a plug-in's precomputed forecasts, and compete in
the same leaderboard. Optional tuning (optuna TPE, fixed seed, bounded trials)
uses a window that ends at the first backtest cutoff, so the windows that score
the candidate never choose its parameters.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from forecasting.data.contract import ID, TARGET, TIME
from forecasting.data.covariates import Covariates
from forecasting.evaluation.losses import scale_denominator
from forecasting.models.base import ForecastModel
from forecasting.models.global_model import as_global, as_tunable
from forecasting.training.isolation import IsolatedFailure, Outcome, SeriesOutcomes
from forecasting.training.plan import Candidate, TrainingPlan

logger = logging.getLogger(__name__)


def is_global(candidate: Candidate) -> bool:
    return candidate.model.get_tag("scope") == "global"


def global_candidates(plan: TrainingPlan) -> list[Candidate]:
    return [c for c in plan.candidates if is_global(c)]


@dataclass
class GlobalResult:
    """Per series the global candidates' outcomes; per candidate what was fitted and how."""

    outcomes: dict[str, SeriesOutcomes] = field(default_factory=dict)
    info: dict[str, dict[str, Any]] = field(default_factory=dict)


def cut(panel: pd.DataFrame, offset: int) -> pd.DataFrame:
    """The panel without the last ``offset`` observations of every series."""
    if offset == 0:
        return panel
    from_end = panel.groupby(ID, sort=False).cumcount(ascending=False).to_numpy()
    return panel[from_end >= offset]


def cutoff_offsets(plan: TrainingPlan) -> list[int]:
    """Observations each backtest window hides (oldest window first), then 0 for the future."""
    return [plan.horizon + plan.step * (plan.n_windows - 1 - i) for i in range(plan.n_windows)] + [0]


def _eligible(candidate: Candidate, n_obs: Mapping[str, int], demands: Mapping[str, str], plan: TrainingPlan) -> list[str]:
    """Series (not ended) the candidate can forecast from their whole history."""
    return [uid for uid, n in n_obs.items() if uid in demands and plan.eligible(candidate, demands[uid], n)]


def _fit_predict(model: ForecastModel, panel: pd.DataFrame, plan: TrainingPlan, freq: str, quantiles: tuple[float, ...],
                 covariates: Covariates | None) -> pd.DataFrame:
    dynamic = covariates.dynamic if covariates is not None and model.get_tag("exogenous") else None
    static = covariates.static if covariates is not None and model.get_tag("exogenous") else None
    return as_global(model).fit_panel(panel, freq, quantiles, dynamic=dynamic, static=static).predict_panel(plan.horizon)


def tune(candidate: Candidate, panel: pd.DataFrame, ids: list[str], plan: TrainingPlan, freq: str,
         covariates: Covariates | None, n_trials: int, seed: int) -> dict[str, Any]:
    """Best parameters on the window just before the first backtest cutoff (median, scaled MAE)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    first = cutoff_offsets(plan)[0]
    train = cut(panel, first + plan.horizon)
    from_end = panel.groupby(ID, sort=False).cumcount(ascending=False).to_numpy()
    actual = panel[(from_end >= first) & (from_end < first + plan.horizon) & panel[ID].isin(ids)]
    scales = {uid: scale_denominator(part[TARGET].to_numpy()) for uid, part in train.groupby(ID, sort=False)}
    configured = candidate.model.get_params()
    space = as_tunable(candidate.model)

    def objective(trial: Any) -> float:
        params = space.suggest_params(trial)
        model = candidate.model.clone().set_params(**params)
        predicted = _fit_predict(model, train, plan, freq, (0.5,), covariates)
        joined = actual.merge(predicted[[ID, TIME, 0.5]], on=[ID, TIME], how="left")
        error = (joined[TARGET] - joined[0.5]).abs() / joined[ID].map(scales)
        per_series = error.groupby(joined[ID]).mean()
        return float(per_series.mean()) if np.isfinite(per_series).all() else float("inf")

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    # The configured parameters are the first trial: tuning never ends worse than them on this window.
    with warnings.catch_warnings():  # configured values may lie outside the search space: still tried
        warnings.simplefilter("ignore", UserWarning)
        study.enqueue_trial(space.suggest_params(optuna.trial.FixedTrial(configured)))
        study.optimize(objective, n_trials=n_trials)
    return {"params": study.best_params, "tuning_loss": study.best_value, "configured_loss": study.trials[0].value,
            "n_trials": n_trials, "seed": seed}


def train_global(
    history: pd.DataFrame,
    demands: Mapping[str, str],
    plan: TrainingPlan,
    freq: str,
    covariates: Covariates | None = None,
    n_trials: int = 0,
    seed: int = 0,
) -> GlobalResult:
    """Every global candidate's forecasts for the series of ``history`` (long, sorted).

    ``demands``: the demand type of every series that has not ended (ended ones are left out).
    """
    result = GlobalResult()
    candidates = global_candidates(plan)
    if not candidates:
        return result
    panel = history[history[ID].isin(set(demands))][[ID, TIME, TARGET]].reset_index(drop=True)
    n_obs = panel.groupby(ID, sort=False).size().to_dict()
    for candidate in candidates:
        ids = _eligible(candidate, n_obs, demands, plan)
        if not ids:
            continue
        started = time.perf_counter()
        info: dict[str, Any] = {"n_series": len(ids), "params": {}}
        if n_trials:
            try:
                info.update(tune(candidate, panel, ids, plan, freq, covariates, n_trials, seed))
            except Exception as exc:  # tuning is an improvement, never a reason to lose the candidate
                logger.warning("model %s: tuning failed, configured parameters kept: %s", candidate.label, exc)
                info["tuning_error"] = f"{type(exc).__name__}: {exc}"[:300]
        for offset in cutoff_offsets(plan):
            outcomes = _outcomes_at(candidate, panel, ids, n_obs, offset, info["params"], plan, freq, covariates)
            for uid, outcome in outcomes.items():
                result.outcomes.setdefault(uid, {}).setdefault(candidate.label, {})[n_obs[uid] - offset] = outcome
        info["seconds"] = round(time.perf_counter() - started, 2)
        info["params"] = {**candidate.model.get_params(), **info["params"]}
        result.info[candidate.label] = info
    return result


def _outcomes_at(candidate: Candidate, panel: pd.DataFrame, ids: list[str], n_obs: Mapping[str, int], offset: int,
                 params: dict[str, Any], plan: TrainingPlan, freq: str, covariates: Covariates | None) -> dict[str, Outcome]:
    model = candidate.model.clone().set_params(**params)
    try:
        predicted = _fit_predict(model, cut(panel, offset), plan, freq, plan.quantiles, covariates)
    except Exception as exc:  # a failed fit costs these series this candidate only
        message = f"{type(exc).__name__}: {exc}"[:300]
        logger.warning("model %s: global fit at %d observations before the end failed: %s", candidate.label, offset, message)
        return dict.fromkeys(ids, IsolatedFailure("exception", message))
    by_series = {str(uid): part for uid, part in predicted.groupby(ID, sort=False)}
    outcomes: dict[str, Outcome] = {}
    for uid in ids:
        part = by_series.get(uid)
        if part is None or len(part) != plan.horizon:
            outcomes[uid] = IsolatedFailure("too_short", f"no global forecast with {n_obs[uid] - offset} observations")
        else:  # a quantile the model does not make is NaN: calibration fills it in, as for local models
            outcomes[uid] = {q: part[q].to_numpy(dtype=np.float64) if q in part else np.full(plan.horizon, np.nan)
                             for q in plan.quantiles}
    return outcomes


# --- on disk: one row per series, history length and step -----------------------------
def outcomes_frame(outcomes: Mapping[str, SeriesOutcomes], quantiles: tuple[float, ...]) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    for uid, by_label in outcomes.items():
        for label, by_length in by_label.items():
            for length, outcome in by_length.items():
                base = {ID: uid, "candidate": label, "length": int(length)}
                if isinstance(outcome, IsolatedFailure):
                    rows.append({**base, "step": 0, "error": outcome.kind, "message": outcome.message})
                    continue
                for step in range(len(outcome[quantiles[0]])):
                    rows.append({**base, "step": step + 1, "error": "", "message": "",
                                 **{f"q{q}": float(outcome[q][step]) for q in quantiles}})
    columns = [ID, "candidate", "length", "step", "error", "message", *(f"q{q}" for q in quantiles)]
    return pd.DataFrame(rows, columns=columns)


def outcomes_from_frame(frame: pd.DataFrame, quantiles: tuple[float, ...]) -> dict[str, SeriesOutcomes]:
    outcomes: dict[str, SeriesOutcomes] = {}
    for (uid, label, length), part in frame.groupby([ID, "candidate", "length"], sort=False):
        if part["error"].iloc[0]:
            outcome: Outcome = IsolatedFailure(str(part["error"].iloc[0]), str(part["message"].iloc[0]))
        else:
            part = part.sort_values("step")
            outcome = {q: part[f"q{q}"].to_numpy(dtype=np.float64) for q in quantiles}
        outcomes.setdefault(str(uid), {}).setdefault(str(label), {})[int(length)] = outcome
    return outcomes
