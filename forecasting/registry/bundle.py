"""The registered bundle: every series' model and what it needs to forecast from fresh history.

One bundle per pipeline run holds, as plain files (no pickle):

- ``winners.parquet``: the winners manifest, series -> model (label), ensemble members and
  weights, status, lifecycle, the model's mean backtest scores, and the training group
  (run and shard) whose panel its global models were fitted on;
- ``history.parquet``: the validated history the run trained on (the default input);
- ``bundle.json``: the run id, forecast origin, the run's settings, and the parameters each
  group's global models were fitted with (tuned ones included);
- ``calibration.json``: per calibration pool (a shard's series of one demand type, named in
  the manifest's ``pool`` column), the calibrators training learned there.

``ForecastBundle`` is the pyfunc. It is logged as "models from code" (``bundle_model.py``),
so the class itself is imported, never unpickled. ``predict`` takes series ids (and
optionally their fresh history), refits each series' model as training did
(``member_forecasts``: plug-ins in child processes, global models on their panel),
calibrates it with its pool's calibrators as training did (``calibrated_members``) and
returns its quantile forecasts; a series whose model fails, or that the manifest does not
know, goes down the configured fallback chain. A series without a recorded pool (unknown
to the manifest, or a bundle written before calibration was recorded) gets its members'
own quantiles, with conformal ones for models without native quantiles.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecasting.config import Settings
from forecasting.data.contract import ID, quantile_label
from forecasting.data.forecast_rows import forecast_rows
from forecasting.data.sharding import shard_of
from forecasting.evaluation.fallback import Failure, FallbackChain, chain_labels
from forecasting.registry.calibrated_members import PoolCalibration, calibrated_forecast
from forecasting.registry.member_forecasts import MemberForecasts, Series, bundle_plan
from forecasting.registry.series_model import QuantileForecast, SeriesModel

WINNERS, HISTORY, META, CALIBRATION = "winners", "history", "bundle", "calibration"
SCORE_COLUMNS = ("scaled_quantile_loss", "mase", "coverage")
WINNER_COLUMNS = [ID, "model", "ensemble_members", "status", "lifecycle", *SCORE_COLUMNS, "global_group", "pool"]
GlobalParams = dict[str, dict[str, dict[str, Any]]]  # group -> global label -> parameters


def training_group(run_id: str, shard: int) -> str:
    """The name of the panel a series' global models were fitted on: its run and shard."""
    return f"{run_id}/shard-{int(shard):04d}"


def winners_manifest(ledger: pd.DataFrame, leaderboard: pd.DataFrame, groups: Mapping[str, str] | None = None,
                     pools: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Series -> the model that forecast it, its members and its mean backtest scores (training group and pool)."""
    published = ledger[ledger["model"].fillna("") != ""].copy()
    board = leaderboard.rename(columns={"candidate": "model"})[[ID, "model", *SCORE_COLUMNS]]
    manifest = published.merge(board, on=[ID, "model"], how="left")
    for column in WINNER_COLUMNS:
        if column not in manifest:
            manifest[column] = np.nan if column in SCORE_COLUMNS else ""
    if groups is not None:
        manifest["global_group"] = manifest[ID].astype(str).map(groups).fillna("")
    if pools is not None:
        manifest["pool"] = manifest[ID].astype(str).map(pools).fillna("")
    return manifest[WINNER_COLUMNS].sort_values(ID).reset_index(drop=True)


def write_bundle(folder: Path, run_id: str, as_of: str, settings: Settings, winners: pd.DataFrame, history: pd.DataFrame,
                 global_params: GlobalParams | None = None, calibration: Mapping[str, str] | None = None) -> dict[str, str]:
    """Write the bundle's artifact files; returns {artifact name: path} for ``log_model``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / f"{name}.parquet" for name in (WINNERS, HISTORY)}
    winners.to_parquet(paths[WINNERS], index=False)
    history[[ID, "ds", "y"]].to_parquet(paths[HISTORY], index=False)
    meta = {"run_id": run_id, "as_of": as_of, "settings": settings.model_dump(mode="json"),
            "global_params": global_params or {}}
    paths[META] = folder / f"{META}.json"
    paths[META].write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
    paths[CALIBRATION] = folder / f"{CALIBRATION}.json"
    paths[CALIBRATION].write_text(json.dumps(dict(calibration or {}), sort_keys=True))
    return {name: str(path) for name, path in paths.items()}


def series_arrays(history: pd.DataFrame) -> Series:
    """Per series (ds, y), sorted by date."""
    frame = history.assign(unique_id=history[ID].astype(str), ds=pd.to_datetime(history["ds"]))
    frame = frame.sort_values([ID, "ds"], kind="stable")
    return {str(uid): (part["ds"].to_numpy(), part["y"].to_numpy(dtype=np.float64))
            for uid, part in frame.groupby(ID, sort=True)}


class BundleForecaster:
    """Forecast series with a run's winners manifest (the logic behind the pyfunc)."""

    def __init__(self, settings: Settings, winners: pd.DataFrame, history: pd.DataFrame | None = None,
                 global_params: GlobalParams | None = None, run_id: str = "", as_of: str = "",
                 calibration: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.calibration = dict(calibration or {})  # pool name -> its calibrators as JSON text
        self._pools: dict[str, PoolCalibration] = {}
        self.winners = winners.assign(unique_id=winners[ID].astype(str)).set_index(ID)
        self.history = history
        self.global_params = global_params or {}
        self.run_id, self.as_of = run_id, as_of

    @classmethod
    def from_folder(cls, folder: Path) -> BundleForecaster:
        meta = json.loads((folder / f"{META}.json").read_text())
        calibration = folder / f"{CALIBRATION}.json"
        return cls(
            Settings(**meta["settings"]),
            pd.read_parquet(folder / f"{WINNERS}.parquet"),
            pd.read_parquet(folder / f"{HISTORY}.parquet"),
            meta.get("global_params", {}),
            str(meta.get("run_id", "")),
            str(meta.get("as_of", "")),
            json.loads(calibration.read_text()) if calibration.exists() else None,
        )

    def model_of(self, unique_id: str) -> SeriesModel | None:
        """The series' model as the manifest records it (None: the bundle does not know the series)."""
        if unique_id not in self.winners.index:
            return None
        entry = self.winners.loc[unique_id]
        return SeriesModel.from_manifest(str(entry["model"]), entry.get("ensemble_members", ""))

    def group_of(self, unique_id: str) -> str | None:
        """The training group whose panel the series' global models were fitted on (None: unknown series)."""
        if unique_id not in self.winners.index:
            return None
        group = str(self.winners.loc[unique_id].get("global_group", "") or "")
        if group:
            return group
        # bundles written before groups were recorded: the shard under the run's layout
        return training_group(self.run_id, shard_of(unique_id, self.settings.compute.n_shards))

    def pool_of(self, unique_id: str) -> PoolCalibration | None:
        """The calibration of the series' pool (None: unknown series, or no calibration recorded)."""
        if unique_id not in self.winners.index:
            return None
        name = str(self.winners.loc[unique_id].get("pool", "") or "")
        if name not in self.calibration:
            return None
        if name not in self._pools:
            self._pools[name] = PoolCalibration.from_json(self.calibration[name], self.settings.forecast.quantiles)
        return self._pools[name]

    def _chain(self, unique_id: str) -> dict[str, SeriesModel]:
        """The series' models in the order they are tried: its manifest's, then the fallback models."""
        first = self.model_of(unique_id)
        own = {first.label: first} if first is not None else {}
        labels = chain_labels(list(own), self.settings.models.fallback)
        return {label: own.get(label) or SeriesModel.single(label) for label in labels}

    def forecast(self, history: pd.DataFrame, horizon: int, failed: dict[str, str] | None = None) -> pd.DataFrame:
        """One row per series and step: ds, horizon, quantiles, model, status and ``model_key``
        (what the model is: its members and weights).

        A series whose whole chain fails raises, unless ``failed`` is given: then it is left
        out and ``failed`` says why.
        """
        series = series_arrays(history)
        plan, broken = bundle_plan(self.settings, horizon)
        pools = {uid: self.pool_of(uid) for uid in series}
        raw = MemberForecasts(self.settings, plan, broken, series, self.group_of, self.global_params, raw=True)
        own = MemberForecasts(self.settings, plan, broken, series, self.group_of, self.global_params)
        models = {uid: self._chain(uid) for uid in series}
        chains = {uid: FallbackChain(list(models[uid]), series[uid][1][-plan.history_cap:], plan.explosion_factor)
                  for uid in series}

        def forecast_of(uid: str) -> QuantileForecast:
            model, y, pool = models[uid][chains[uid].current], series[uid][1], pools[uid]
            if pool is not None:
                return calibrated_forecast(model, lambda label: raw.get(uid, label), pool, y, plan.quantiles)
            return model.combine({label: own.get(uid, label) for label in model.labels})

        # In rounds, one link of every pending series each, so a round's member forecasts are
        # computed together (one child process per plug-in, one panel fit per global model).
        pending = sorted(series)
        while pending:
            for members, calibrated in ((raw, True), (own, False)):
                wanted: dict[str, list[str]] = {}
                for uid in pending:
                    if (pools[uid] is not None) == calibrated:
                        for label in models[uid][chains[uid].current].labels:
                            wanted.setdefault(label, []).append(uid)
                members.ensure(wanted)
            for uid in pending:
                chain = chains[uid]
                chain.attempt(lambda uid=uid: forecast_of(uid))
                if chain.passed is None and not chain.open:
                    why = f"series {uid}: every model of the bundle's chain failed: {'; '.join(map(_failure_text, chain.failures))}"
                    if failed is None:
                        raise RuntimeError(why) from chain.failures[-1].error
                    failed[uid] = why
            pending = [uid for uid in pending if chains[uid].open]
        if not series:
            raise KeyError("none of the requested series has history in the bundle or the input")
        passed = {uid: gate for uid in sorted(series) if (gate := chains[uid].passed) is not None}
        picked = [models[uid][chains[uid].current] for uid in passed]
        return forecast_rows(
            list(passed), [series[uid][0][-1] for uid in passed], [gate.quantiles for gate in passed.values()],
            plan.quantiles, horizon, self.settings.forecast.freq,
            model=[m.label for m in picked],
            status=[chains[uid].status(first_is_choice=uid in self.winners.index) for uid in passed],
            model_key=[m.key() for m in picked],
        )

    def predict(self, model_input: pd.DataFrame, horizon: int | None = None) -> pd.DataFrame:
        """Quantile forecasts for the ids in ``model_input``; its ds/y rows, if any, are the history."""
        horizon = int(horizon or self.settings.forecast.horizon)
        ids = [str(i) for i in pd.unique(model_input[ID])]
        has_history = {"ds", "y"} <= set(model_input.columns) and model_input["y"].notna().any()
        history = model_input if has_history else self._stored_history(ids)
        return self.forecast(history, horizon).drop(columns="model_key")

    def _stored_history(self, ids: list[str]) -> pd.DataFrame:
        if self.history is None:
            raise ValueError("no history given and the bundle holds none")
        unknown = sorted(set(ids) - set(self.history[ID].astype(str)))
        if unknown:
            raise KeyError(f"series not in the bundle's history (pass their history as ds, y rows): {unknown[:10]}")
        return self.history[self.history[ID].astype(str).isin(ids)]


def _failure_text(failure: Failure) -> str:
    """A failed link as the bundle reports it: what it raised, or the gate's failure."""
    if failure.gate is None:
        return f"{failure.label}: {type(failure.error).__name__}: {failure.error}"
    return f"{failure.label}: ValueError: quality_gate {failure.gate}"


def signature(settings: Settings) -> Any:
    """Input: unique_id (and optionally ds, y history); output: the quantile rows; param: horizon."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

    inputs = Schema([ColSpec("string", ID), ColSpec("datetime", "ds", required=False),
                     ColSpec("double", "y", required=False)])
    outputs = Schema([ColSpec("string", ID), ColSpec("datetime", "ds"), ColSpec("long", "horizon"),
                      *[ColSpec("double", quantile_label(q)) for q in settings.forecast.quantiles],
                      ColSpec("string", "model"), ColSpec("string", "status")])
    params = ParamSchema([ParamSpec("horizon", "long", settings.forecast.horizon)])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def bundle_from_context_artifacts(artifacts: Mapping[str, str]) -> BundleForecaster:
    """The forecaster from a pyfunc context's artifact paths (all in one folder)."""
    return BundleForecaster.from_folder(Path(artifacts[META]).parent)
