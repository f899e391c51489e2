"""The registered bundle: every series' winner and what it needs to forecast from fresh history.

One bundle per pipeline run holds, as plain files (no pickle):

- ``winners.parquet``: the winners manifest, series -> model (label), ensemble members,
  status, lifecycle and the model's mean backtest scores;
- ``history.parquet``: the validated history the run trained on (the default input);
- ``bundle.json``: the run id, forecast origin and the run's settings (frequency, quantiles,
  candidate names and parameters, fallbacks).

``ForecastBundle`` is the pyfunc. It is logged as "models from code" (``bundle_model.py``),
so the class itself is imported, never unpickled. ``predict`` takes series ids (and
optionally their fresh history), refits each series' manifest model and returns its
quantile forecasts; a series whose model fails, or that the manifest does not know, goes
down the configured fallback chain.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecasting.config import Settings
from forecasting.data.contract import STATUS_FALLBACK, STATUS_OK, quantile_label
from forecasting.evaluation.quality import quality_gate
from forecasting.evaluation.selection import ENSEMBLE_LABEL, median_ensemble
from forecasting.evaluation.weighted_ensemble import WEIGHTED_LABEL, combine, parse_weights
from forecasting.models.catalog import build_model
from forecasting.training.fitting import QuantileForecast, forecast_quantiles
from forecasting.training.plan import Candidate, TrainingPlan

WINNERS, HISTORY, META = "winners", "history", "bundle"
WINNER_COLUMNS = ["unique_id", "model", "ensemble_members", "status", "lifecycle", "scaled_quantile_loss", "mase", "coverage"]


def winners_manifest(ledger: pd.DataFrame, leaderboard: pd.DataFrame) -> pd.DataFrame:
    """Series -> the model that forecast it, its members and its mean backtest scores."""
    published = ledger[ledger["model"].fillna("") != ""].copy()
    board = leaderboard.rename(columns={"candidate": "model"})[["unique_id", "model", "scaled_quantile_loss", "mase", "coverage"]]
    manifest = published.merge(board, on=["unique_id", "model"], how="left")
    for column in WINNER_COLUMNS:
        if column not in manifest:
            manifest[column] = np.nan if column in ("scaled_quantile_loss", "mase", "coverage") else ""
    return manifest[WINNER_COLUMNS].sort_values("unique_id").reset_index(drop=True)


def write_bundle(folder: Path, run_id: str, as_of: str, settings: Settings, winners: pd.DataFrame, history: pd.DataFrame) -> dict[str, str]:
    """Write the bundle's artifact files; returns {artifact name: path} for ``log_model``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / f"{name}.parquet" for name in (WINNERS, HISTORY)}
    winners.to_parquet(paths[WINNERS], index=False)
    history[["unique_id", "ds", "y"]].to_parquet(paths[HISTORY], index=False)
    meta = {"run_id": run_id, "as_of": as_of, "settings": settings.model_dump(mode="json")}
    paths[META] = folder / f"{META}.json"
    paths[META].write_text(json.dumps(meta, indent=2, sort_keys=True))
    return {name: str(path) for name, path in paths.items()}


def _plan(settings: Settings) -> TrainingPlan:
    """The run's candidates and fallbacks, in this process (no plug-in child processes)."""
    season = settings.season_length
    candidates = tuple(Candidate(c.label, build_model(c.name, c.params, season)) for c in settings.models.candidates)
    fallbacks = tuple(Candidate(name, build_model(name, {}, season)) for name in settings.models.fallback)
    return TrainingPlan.from_settings(settings, candidates=candidates, fallbacks=fallbacks)


class BundleForecaster:
    """Forecast series with a run's winners manifest (the logic behind the pyfunc)."""

    def __init__(self, settings: Settings, winners: pd.DataFrame, history: pd.DataFrame | None = None) -> None:
        self.settings = settings
        self.plan = _plan(settings)
        self.winners = winners.set_index("unique_id")
        self.history = history

    @classmethod
    def from_folder(cls, folder: Path) -> BundleForecaster:
        meta = json.loads((folder / f"{META}.json").read_text())
        return cls(
            Settings(**meta["settings"]),
            pd.read_parquet(folder / f"{WINNERS}.parquet"),
            pd.read_parquet(folder / f"{HISTORY}.parquet"),
        )

    def _fit(self, label: str, y: np.ndarray, horizon: int) -> QuantileForecast:
        by_label = {c.label: c for c in (*self.plan.fallbacks, *self.plan.candidates)}
        if label not in by_label:
            raise KeyError(f"model {label} is not in the bundle's candidate set")
        candidate = by_label[label]
        plan = self.plan
        return forecast_quantiles(
            candidate.model, y, horizon, plan.quantiles, plan.conformal_windows, plan.fit_time_limit,
            plan.capped_history(candidate), label,
        )

    def _forecast_one(self, unique_id: str, y: np.ndarray, horizon: int) -> tuple[str, str, QuantileForecast]:
        chain, members = [], []
        if unique_id in self.winners.index:
            entry = self.winners.loc[unique_id]
            chain.append(str(entry["model"]))
            members = [m for m in str(entry["ensemble_members"]).split(",") if m]
        chain += [c.label for c in self.plan.fallbacks if c.label not in chain]
        failures = []
        for label in chain:
            try:
                if label == ENSEMBLE_LABEL:
                    forecast = median_ensemble([self._fit(m, y, horizon) for m in members])
                elif label == WEIGHTED_LABEL:
                    weights = parse_weights(",".join(members))
                    forecast = combine({m: self._fit(m, y, horizon) for m in weights}, weights)
                else:
                    forecast = self._fit(label, y, horizon)
            except Exception as exc:
                failures.append(f"{label}: {type(exc).__name__}: {exc}")
                continue
            gate = quality_gate(forecast, y[-self.plan.history_cap :], self.plan.explosion_factor)
            if gate.failure is None:
                return label, STATUS_OK if label == chain[0] and unique_id in self.winners.index else STATUS_FALLBACK, gate.quantiles
            failures.append(f"{label}: quality_gate {gate.failure}")
        raise RuntimeError(f"series {unique_id}: every model of the bundle's chain failed: {'; '.join(failures)}")

    def predict(self, model_input: pd.DataFrame, horizon: int | None = None) -> pd.DataFrame:
        """Quantile forecasts for the ids in ``model_input``; its ds/y rows, if any, are the history."""
        horizon = int(horizon or self.settings.forecast.horizon)
        ids = [str(i) for i in pd.unique(model_input["unique_id"])]
        has_history = {"ds", "y"} <= set(model_input.columns) and model_input["y"].notna().any()
        history = model_input if has_history else self._stored_history(ids)
        history = history.assign(unique_id=history["unique_id"].astype(str), ds=pd.to_datetime(history["ds"]))
        history = history.sort_values(["unique_id", "ds"], kind="stable")
        frames = []
        freq = self.settings.forecast.freq
        for unique_id, part in history.groupby("unique_id", sort=True):
            y = part["y"].to_numpy(dtype=np.float64)
            model, status, forecast = self._forecast_one(str(unique_id), y, horizon)
            frame = pd.DataFrame({
                "unique_id": str(unique_id),
                "ds": pd.date_range(part["ds"].iloc[-1], periods=horizon + 1, freq=freq)[1:],
                "horizon": np.arange(1, horizon + 1, dtype=np.int64),
            })
            for q in self.plan.quantiles:
                frame[quantile_label(q)] = forecast[q]
            frame["model"] = model
            frame["status"] = status
            frames.append(frame)
        if not frames:
            raise KeyError(f"none of the requested series {ids[:5]} has history in the bundle or the input")
        return pd.concat(frames, ignore_index=True)

    def _stored_history(self, ids: list[str]) -> pd.DataFrame:
        if self.history is None:
            raise ValueError("no history given and the bundle holds none")
        unknown = sorted(set(ids) - set(self.history["unique_id"].astype(str)))
        if unknown:
            raise KeyError(f"series not in the bundle's history (pass their history as ds, y rows): {unknown[:10]}")
        return self.history[self.history["unique_id"].astype(str).isin(ids)]


def signature(settings: Settings) -> Any:
    """Input: unique_id (and optionally ds, y history); output: the quantile rows; param: horizon."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

    inputs = Schema([ColSpec("string", "unique_id"), ColSpec("datetime", "ds", required=False),
                     ColSpec("double", "y", required=False)])
    outputs = Schema([ColSpec("string", "unique_id"), ColSpec("datetime", "ds"), ColSpec("long", "horizon"),
                      *[ColSpec("double", quantile_label(q)) for q in settings.forecast.quantiles],
                      ColSpec("string", "model"), ColSpec("string", "status")])
    params = ParamSchema([ParamSpec("horizon", "long", settings.forecast.horizon)])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def bundle_from_context_artifacts(artifacts: Mapping[str, str]) -> BundleForecaster:
    """The forecaster from a pyfunc context's artifact paths (all in one folder)."""
    return BundleForecaster.from_folder(Path(artifacts[META]).parent)
