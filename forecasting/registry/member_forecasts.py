"""Forecast the candidates a bundle's series need, the way training fitted them.

- Built-in local models: fitted in this process on each series (``training.fitting``): raw
  (native quantiles or only a median, for ``calibrated_members``) or with conformal
  quantiles where the model has no native ones.
- Plug-ins: fitted in child processes, one per plug-in for all the series that need it,
  through the isolation runner training uses (``training.isolation.run_candidate``), so a
  plug-in that hangs or crashes costs those series that model, never the loading process.
- Global models: fitted across the panel they were backtested on (the series of the same
  training group, with the run's tuned parameters, the real frequency and the configured
  covariates), then each series takes its own rows.

Every (series, candidate) gets a forecast or the exception that prevented it. Plug-ins and
global models give raw forecasts in both modes (NaN for the quantiles they do not make).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from forecasting.config import Settings
from forecasting.data.contract import ID
from forecasting.data.covariates import covariate_spec, load_covariates
from forecasting.models.base import HistoryTooShortError
from forecasting.models.catalog import instantiate, is_builtin, model_class
from forecasting.models.global_model import as_global
from forecasting.training.fitting import QuantileForecast, forecast_quantiles, raw_forecast
from forecasting.training.isolation import isolated_forecast, run_candidate
from forecasting.training.plan import Candidate, IsolationLimits, TrainingPlan

Outcome = QuantileForecast | Exception
Series = dict[str, tuple[np.ndarray, np.ndarray]]  # id -> (ds, y)


def bundle_candidate(name: str, label: str, params: Mapping[str, Any], settings: Settings) -> Candidate:
    """A configured model as training runs it: plug-ins isolated under their limits, built-ins in-process."""
    found = model_class(name)
    model = instantiate(found, dict(params), settings.season_length, freq=settings.forecast.freq)
    if is_builtin(found) or not settings.plugins.isolation:
        return Candidate(label, model)
    timeout, memory = settings.plugins.limits_for(name)
    return Candidate(label, model, IsolationLimits(timeout, memory))


def bundle_plan(settings: Settings, horizon: int) -> tuple[TrainingPlan, dict[str, str]]:
    """The run's plan for ``horizon`` steps, and why a configured model cannot be built here (by label).

    A candidate that cannot be built (a plug-in not installed where the bundle is loaded)
    only costs the series that need it: they go down their fallback chain.
    """
    broken: dict[str, str] = {}

    def build(entries: Iterable[tuple[str, str, Mapping[str, Any]]]) -> tuple[Candidate, ...]:
        built = []
        for name, label, params in entries:
            try:
                built.append(bundle_candidate(name, label, params, settings))
            except Exception as exc:
                broken[label] = f"{type(exc).__name__}: {exc}"
        return tuple(built)

    candidates = build((c.name, c.label, c.params) for c in settings.models.candidates)
    fallbacks = build((name, name, {}) for name in settings.models.fallback)
    plan = TrainingPlan.from_settings(settings, candidates=candidates, fallbacks=fallbacks)
    return dataclasses.replace(plan, horizon=horizon), broken


class MemberForecasts:
    """Forecasts of (series, candidate label) pairs, computed in batches and kept.

    ``group_of``: a series' training group (None: the series was not in any global panel);
    ``global_params``: per group and global label, the parameters it was fitted with.
    """

    def __init__(self, settings: Settings, plan: TrainingPlan, broken: Mapping[str, str], series: Series,
                 group_of: Callable[[str], str | None], global_params: Mapping[str, Mapping[str, dict]],
                 raw: bool = False) -> None:
        self.settings, self.plan, self.broken, self.series = settings, plan, dict(broken), series
        self.raw = raw
        self.group_of, self.global_params = group_of, global_params
        self.by_label = {c.label: c for c in (*plan.fallbacks, *plan.candidates)}  # a candidate wins a clash
        self.values: dict[tuple[str, str], Outcome] = {}

    def get(self, unique_id: str, label: str) -> QuantileForecast:
        found = self.values.get((unique_id, label))
        if found is None:
            raise KeyError(f"{label} was not computed for series {unique_id}")
        if isinstance(found, Exception):
            raise found
        return found

    def ensure(self, wanted: Mapping[str, Iterable[str]]) -> None:
        """Compute every (series, label) of ``wanted`` (label -> series ids) not computed yet."""
        for label, ids in wanted.items():
            todo = sorted({uid for uid in ids if (uid, label) not in self.values})
            if not todo:
                continue
            candidate = self.by_label.get(label)
            if candidate is None:
                reason = self.broken.get(label, "not in the bundle's candidate set")
                self._fail(todo, label, KeyError(f"model {label}: {reason}"))
            elif candidate.model.get_tag("scope") == "global":
                self._global(candidate, todo)
            elif candidate.isolation is not None:
                self._isolated(candidate, todo)
            else:
                for uid in todo:
                    self.values[(uid, label)] = self._local(candidate, self.series[uid][1])

    def _fail(self, ids: Iterable[str], label: str, exc: Exception) -> None:
        for uid in ids:
            self.values[(uid, label)] = exc

    def _local(self, candidate: Candidate, y: np.ndarray) -> Outcome:
        plan = self.plan
        try:
            if self.raw:
                return raw_forecast(candidate.model, y, plan.horizon, plan.quantiles, plan.fit_time_limit,
                                    plan.capped_history(candidate), candidate.label)
            return forecast_quantiles(candidate.model, y, plan.horizon, plan.quantiles, plan.conformal_windows,
                                      plan.fit_time_limit, plan.capped_history(candidate), candidate.label)
        except Exception as exc:
            return exc

    def _isolated(self, candidate: Candidate, ids: list[str]) -> None:
        work = {uid: (self.series[uid][1], [self.series[uid][1].size]) for uid in ids}
        outcomes = run_candidate(candidate, self.plan, work, refit_always=True)
        for uid in ids:
            try:
                self.values[(uid, candidate.label)] = isolated_forecast(
                    {candidate.label: outcomes.get(uid, {})}, candidate.label, work[uid][0].size
                )
            except Exception as exc:
                self.values[(uid, candidate.label)] = exc

    def _global(self, candidate: Candidate, ids: list[str]) -> None:
        by_group: dict[str, list[str]] = {}
        for uid in ids:
            group = self.group_of(uid)
            if group is None:
                self.values[(uid, candidate.label)] = KeyError(f"series {uid} was in no panel of {candidate.label}")
            else:
                by_group.setdefault(group, []).append(uid)
        for group, needed in by_group.items():
            panel_ids = sorted(uid for uid in self.series if self.group_of(uid) == group)
            params = self.global_params.get(group, {}).get(candidate.label, {})
            try:
                predicted = self._fit_panel(candidate, panel_ids, params)
            except Exception as exc:  # a failed panel fit costs these series this model only
                self._fail(needed, candidate.label, RuntimeError(f"{candidate.label} panel fit: {type(exc).__name__}: {exc}"))
                continue
            for uid in needed:
                part = predicted.get(uid)
                if part is None or len(part) != self.plan.horizon:
                    self.values[(uid, candidate.label)] = HistoryTooShortError(f"no {candidate.label} forecast for {uid}")
                else:
                    self.values[(uid, candidate.label)] = {
                        q: part[q].to_numpy(dtype=np.float64) if q in part else np.full(len(part), np.nan)
                        for q in self.plan.quantiles
                    }

    def _fit_panel(self, candidate: Candidate, ids: list[str], params: Mapping[str, Any]) -> dict[str, pd.DataFrame]:
        settings = self.settings
        panel = pd.concat(
            [pd.DataFrame({ID: uid, "ds": self.series[uid][0], "y": self.series[uid][1]}) for uid in ids],
            ignore_index=True,
        )
        model = candidate.model.clone().set_params(**dict(params))
        dynamic = static = None
        if model.get_tag("exogenous"):
            covariates = load_covariates(covariate_spec(settings), ids, settings.forecast.freq, settings.forecast.horizon)
            if covariates is not None:
                dynamic, static = covariates.dynamic, covariates.static
        fitted = as_global(model).fit_panel(panel, settings.forecast.freq, self.plan.quantiles, dynamic=dynamic, static=static)
        predicted = fitted.predict_panel(self.plan.horizon)
        return {str(uid): part.sort_values("ds") for uid, part in predicted.groupby(ID, sort=False)}
