"""A bundle's forecasts calibrated the way training calibrated them.

Training publishes calibrated forecasts: each candidate's raw forecast (native quantiles,
or only a median) goes through the calibrator its pool learned (a shard's series of one
demand type), and the pooled ensemble is the weighted mean of its calibrated members,
calibrated once more. A bundle records, per pool, those calibrators (``pool_calibrations``)
and, per series, its pool and the ensemble's weights (the winners manifest), so that
refitting a series' model on fresh history and applying the same calibration gives what
training would have published from that history (``calibrated_forecast``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecasting.evaluation.calibration import BinnedCalibrator
from forecasting.evaluation.pooled_ensemble import combine_members
from forecasting.evaluation.procedure import ENSEMBLE, calibrate_rows, origin_features
from forecasting.registry.series_model import QuantileForecast, SeriesModel


def pool_key(group: str, demand_type: str) -> str:
    """The name of a calibration pool: the training group (run and shard) and the demand type."""
    return f"{group}/{demand_type}"


def pool_calibrations(pools: pd.DataFrame, group_of_shard: Callable[[int], str]) -> dict[str, str]:
    """Pool name -> its calibrators as JSON text (label -> ``BinnedCalibrator.describe()``), from a run's pools."""
    if pools.empty or "calibrators" not in pools:
        return {}
    return {pool_key(group_of_shard(int(shard)), str(demand)): str(text)
            for shard, demand, text in pools[["shard", "demand_type", "calibrators"]].itertuples(index=False)}


@dataclass(frozen=True)
class PoolCalibration:
    """The calibrators one pool learned, by candidate label (and ``ENSEMBLE``)."""

    calibrators: dict[str, BinnedCalibrator]

    @classmethod
    def from_json(cls, text: str, quantiles: Sequence[float]) -> PoolCalibration:
        described = json.loads(text)
        return cls({label: BinnedCalibrator.from_description(bins, quantiles) for label, bins in described.items()})


def _calibrated(raw: QuantileForecast, calibrator: BinnedCalibrator, features: tuple[float, bool, float],
                quantiles: Sequence[float]) -> np.ndarray:
    scale, nonneg, volatility = features
    rows = np.stack([np.asarray(raw[q], dtype=np.float64) for q in quantiles], axis=-1)[None]
    return calibrate_rows(rows, calibrator.for_horizon(rows.shape[1]), np.array([scale]), np.array([volatility]), np.array([nonneg]), quantiles)


def calibrated_forecast(model: SeriesModel, member: Callable[[str], QuantileForecast], pool: PoolCalibration,
                        y: np.ndarray, quantiles: Sequence[float]) -> QuantileForecast:
    """The series' model forecast from its members' raw forecasts (``member(label)``), calibrated by ``pool``.

    A member of the pooled ensemble without a forecast is left out and the others' weights
    renormalised, as in training; a single model without a forecast or a calibrator raises.
    """
    features = origin_features(y)

    def calibrated(label: str) -> np.ndarray:
        if label not in pool.calibrators:
            raise KeyError(f"{label}: no calibrator recorded for its pool")
        return _calibrated(member(label), pool.calibrators[label], features, quantiles)

    if model.label == ENSEMBLE:
        stacked, weights = [], []
        for label, weight in model.members:
            try:
                stacked.append(calibrated(label))
                weights.append(weight)
            except Exception:  # noqa: BLE001 - a member without a forecast leaves the mean, as in training
                continue
        if not stacked:
            raise ValueError(f"{ENSEMBLE}: none of its members {model.labels} has a forecast")
        combined = combine_members(np.stack(stacked), np.asarray(weights, dtype=np.float64))
        values = _calibrated({q: combined[0, :, k] for k, q in enumerate(quantiles)}, pool.calibrators[ENSEMBLE],
                             features, quantiles) if ENSEMBLE in pool.calibrators else combined
    elif model.kind == "single":
        values = calibrated(model.label)
    else:  # a median or weighted ensemble of an earlier version: its calibrated members combined
        return model.combine({label: _as_dict(calibrated(label), quantiles) for label in model.labels})
    return _as_dict(values, quantiles)


def _as_dict(values: np.ndarray, quantiles: Sequence[float]) -> QuantileForecast:
    return {q: values[0, :, k] for k, q in enumerate(quantiles)}


def series_pools(groups: Mapping[str, str], demand_types: Mapping[str, str]) -> dict[str, str]:
    """Series -> its pool name, for the series with both a training group and a demand type."""
    return {uid: pool_key(group, demand_types[uid]) for uid, group in groups.items() if uid in demand_types}
