"""Live point losses: every published forecast step whose actual has arrived, judged against its reference.

A point is one (series, forecast origin, horizon) whose target week has an actual. Its loss is
fev's scaled quantile loss of that one step, scaled by the history up to the forecast's origin
(as the backtest scales each window by the history up to its cutoff). Its reference is the
series' backtest level in the run that published it, times that run's factor for the point's
own horizon (the ``horizon`` column of the forecast table: a missing week never shifts the
horizons of the others). Points from all origins count, not just the newest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from forecasting.data.contract import ID, quantile_label
from forecasting.monitoring.reference import RunReference, point_losses, scales_by_origin

POINT_COLUMNS = [ID, "forecast_origin", "ds", "horizon", "run_id", "model", "loss", "inside", "level_in_scale"]
LEVEL_WEEKS = 13  # the level a point's error is material against: mean |y| of the periods up to its origin


def live_points(forecasts: pd.DataFrame, history: pd.DataFrame, quantiles: Sequence[float]) -> pd.DataFrame:
    """Every published step with an arrived actual: its scaled loss and whether the outer interval held it."""
    joined = forecasts.merge(history[[ID, "ds", "y"]], on=[ID, "ds"], how="inner")
    joined = joined[joined["y"].notna()].reset_index(drop=True)
    if joined.empty:
        return pd.DataFrame(columns=[*POINT_COLUMNS, "y"])
    keys = pd.MultiIndex.from_frame(joined[[ID, "forecast_origin"]])
    scale = scales_by_origin(history, joined, "forecast_origin").reindex(keys).to_numpy()
    level = levels_by_origin(history, joined).reindex(keys).to_numpy()
    low, high = quantile_label(min(quantiles)), quantile_label(max(quantiles))
    joined["loss"] = point_losses(joined, quantiles, scale)
    joined["inside"] = (joined["y"] >= joined[low]) & (joined["y"] <= joined[high])
    joined["level_in_scale"] = level / scale
    return joined[[*POINT_COLUMNS, "y"]]


def levels_by_origin(history: pd.DataFrame, keys: pd.DataFrame) -> pd.Series:
    """Mean |y| of the last ``LEVEL_WEEKS`` periods up to each (unique_id, forecast_origin)."""
    by_id = {str(uid): part.sort_values("ds") for uid, part in history.groupby(ID, sort=False)}
    pairs = keys[[ID, "forecast_origin"]].drop_duplicates()
    values = []
    for uid, origin in pairs.itertuples(index=False):
        part = by_id.get(str(uid))
        y = part.loc[part["ds"] <= origin, "y"].to_numpy(float)[-LEVEL_WEEKS:] if part is not None else np.array([])
        values.append(float(np.mean(np.abs(y))) if y.size else np.nan)
    return pd.Series(values, index=pd.MultiIndex.from_frame(pairs), dtype=float)


def with_reference(points: pd.DataFrame, references: Mapping[str, RunReference], floor: float,
                   materiality: float = 0.0) -> pd.DataFrame:
    """Add each point's ``reference`` loss and whether it is ``pooled`` (no backtest of its own).

    The reference is the series' backtest level (at least ``floor``) times the run's factor for
    the point's horizon, and at least the loss of an error of ``materiality`` times the series'
    level: a series whose backtest was near perfect is not degraded by errors too small to matter.
    A series its run did not backtest takes the run's median level; a run without a reference
    takes the median of the other runs' (NaN when there is none at all: the point is not judged).
    """
    pooled_levels = [r.pooled_level for r in references.values() if np.isfinite(r.pooled_level)]
    everywhere = float(np.median(pooled_levels)) if pooled_levels else np.nan
    level, pooled, factor = [], [], []
    for uid, run_id, horizon in points[[ID, "run_id", "horizon"]].itertuples(index=False):
        reference = references.get(str(run_id))
        own = reference.levels.get(uid, np.nan) if reference is not None else np.nan
        fallback = reference.pooled_level if reference is not None and np.isfinite(reference.pooled_level) else everywhere
        level.append(own if np.isfinite(own) else fallback)
        pooled.append(not np.isfinite(own))
        factor.append(reference.factor(horizon) if reference is not None else 1.0)
    judged = points.assign(pooled=pooled)
    reference = np.maximum(np.asarray(level, dtype=float), floor) * np.asarray(factor, dtype=float)
    material = materiality * judged["level_in_scale"].to_numpy(float)
    judged["reference"] = np.where(np.isfinite(reference), np.fmax(reference, material), np.nan)
    return judged
