"""What a published forecast is judged against: its run's backtest loss, per series and per horizon.

For each series of a run, the model it published was backtested on the run's windows: its
point losses (one per window and horizon, fev's scaled quantile loss of one step) give the
series' reference level (their mean). How loss grows with the horizon is pooled over the run's
series (``profile``: horizon -> factor, mean 1), so one noisy window does not set a horizon's
reference. A series the run could not backtest (a new series, a fallback) gets the run's
median level (``pooled``), so it is judged from its first actuals.

The reference is small (a row per series, a factor per horizon) and is kept in the monitoring
tables, so it outlives the run folder it was computed from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from forecasting.data.contract import ID, quantile_label
from forecasting.evaluation.losses import pinball_loss, scale_denominator


@dataclass(frozen=True)
class RunReference:
    """One run's reference: per-series levels, the horizon profile and the pooled level."""

    run_id: str
    levels: pd.Series  # unique_id -> mean backtest point loss of its published model
    profile: dict[int, float] = field(default_factory=dict)  # horizon -> factor (mean 1 over horizons)
    pooled_level: float = float("nan")

    def factor(self, horizon: int) -> float:
        if not self.profile:
            return 1.0
        return float(self.profile.get(int(horizon), self.profile[max(self.profile)]))


def point_losses(rows: pd.DataFrame, quantiles: Sequence[float], scale: np.ndarray) -> np.ndarray:
    """Scaled quantile loss of each row's single step: mean over quantiles of ``2 rho_q / scale``."""
    y = rows["y"].to_numpy(float)
    total = np.zeros(len(rows))
    for q in quantiles:
        total += pinball_loss(y, rows[quantile_label(q)].to_numpy(float), q)
    return 2.0 * total / len(quantiles) / scale


def scales_by_origin(history: pd.DataFrame, keys: pd.DataFrame, origin: str) -> pd.Series:
    """``scale_denominator`` of each (unique_id, ``origin`` column) pair's history up to that date."""
    by_id = {str(uid): part.sort_values("ds") for uid, part in history.groupby(ID, sort=False)}
    pairs = keys[[ID, origin]].drop_duplicates()
    values = []
    for uid, cutoff in pairs.itertuples(index=False):
        part = by_id.get(str(uid))
        y = part.loc[part["ds"] <= cutoff, "y"].to_numpy(float) if part is not None else np.array([])
        values.append(scale_denominator(y, m=1))
    return pd.Series(values, index=pd.MultiIndex.from_frame(pairs), dtype=float)


def run_reference(run_id: str, backtest: pd.DataFrame, models: pd.Series, history: pd.DataFrame,
                  quantiles: Sequence[float]) -> RunReference:
    """The reference of a run from its backtest; ``models``: series -> the model it published."""
    wanted = backtest[backtest["candidate"].to_numpy() == backtest[ID].map(models).to_numpy()]
    wanted = wanted[wanted["y"].notna()].sort_values([ID, "cutoff", "ds"])
    if wanted.empty:
        return RunReference(run_id, pd.Series(dtype=float))
    scales = scales_by_origin(history, wanted, "cutoff")
    scale = scales.reindex(pd.MultiIndex.from_frame(wanted[[ID, "cutoff"]])).to_numpy()
    losses = wanted.assign(loss=point_losses(wanted, quantiles, scale),
                           horizon=wanted.groupby([ID, "cutoff"]).cumcount() + 1)
    levels = losses.groupby(ID)["loss"].mean()
    by_horizon = losses.groupby([ID, "horizon"])["loss"].mean().unstack()
    relative = by_horizon.div(levels.where(levels > 0), axis=0).median(axis=0, skipna=True)
    relative = relative[np.isfinite(relative) & (relative > 0)]
    profile = (relative / relative.mean()).to_dict() if len(relative) else {}
    return RunReference(run_id, levels, {int(k): float(v) for k, v in profile.items()}, float(levels.median()))
