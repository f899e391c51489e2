"""Live scaled quantile loss and interval coverage, and the backtest loss they are judged against.

Both losses are fev's scaled quantile loss (``evaluation.losses``) with the scale of the
history before the forecast start, over the same horizons: a series whose first ``k``
weeks of actuals have arrived is compared with its model's backtest over horizons 1..k.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from forecasting.data.contract import quantile_label
from forecasting.evaluation.losses import interval_coverage, scale_denominator, scaled_quantile_loss

LIVE_COLUMNS = ["unique_id", "forecast_origin", "run_id", "model", "n_weeks", "live_loss", "coverage"]


def _scales(history: pd.DataFrame, cutoffs: pd.DataFrame) -> pd.Series:
    """``scale_denominator`` of each (unique_id, cutoff)'s history up to the cutoff."""
    by_id = {uid: part for uid, part in history.groupby("unique_id", sort=False)}
    values = []
    for uid, cutoff in cutoffs[["unique_id", "cutoff"]].itertuples(index=False):
        part = by_id.get(uid)
        y = part.loc[part["ds"] <= cutoff, "y"].to_numpy() if part is not None else np.array([])
        values.append(scale_denominator(y, m=1))
    return pd.Series(values, index=pd.MultiIndex.from_frame(cutoffs[["unique_id", "cutoff"]]))


def _loss(part: pd.DataFrame, quantiles: Sequence[float], scale: float) -> float:
    forecasts = {q: part[quantile_label(q)].to_numpy(float) for q in quantiles}
    return scaled_quantile_loss(part["y"].to_numpy(float), forecasts, scale)


def live_scores(forecasts: pd.DataFrame, history: pd.DataFrame, quantiles: Sequence[float]) -> pd.DataFrame:
    """Per series and origin: weeks of actuals, live scaled quantile loss, outer-interval coverage."""
    joined = forecasts.merge(history[["unique_id", "ds", "y"]], on=["unique_id", "ds"], how="inner")
    joined = joined[joined["y"].notna()]
    if joined.empty:
        return pd.DataFrame(columns=LIVE_COLUMNS)
    origins = joined[["unique_id", "forecast_origin"]].drop_duplicates().rename(columns={"forecast_origin": "cutoff"})
    scales = _scales(history, origins)
    low, high = quantile_label(min(quantiles)), quantile_label(max(quantiles))
    rows = []
    for (uid, origin), part in joined.groupby(["unique_id", "forecast_origin"], sort=True):
        part = part.sort_values("ds")
        rows.append(
            {
                "unique_id": uid,
                "forecast_origin": origin,
                "run_id": part["run_id"].iloc[0],
                "model": part["model"].iloc[0],
                "n_weeks": int(len(part)),
                "live_loss": _loss(part, quantiles, scales[(uid, origin)]),
                "coverage": interval_coverage(part["y"], part[low], part[high]),
            }
        )
    return pd.DataFrame(rows, columns=LIVE_COLUMNS)


def backtest_losses(
    backtest: pd.DataFrame, history: pd.DataFrame, models: pd.Series, horizons: pd.Series, quantiles: Sequence[float]
) -> pd.Series:
    """Mean over backtest windows of each series' model's loss on horizons 1..k (NaN: no backtest)."""
    wanted = backtest[backtest["candidate"].to_numpy() == backtest["unique_id"].map(models).to_numpy()].copy()
    if wanted.empty:
        return pd.Series(np.nan, index=models.index, dtype=float)
    wanted = wanted.sort_values(["unique_id", "cutoff", "ds"])
    wanted["horizon"] = wanted.groupby(["unique_id", "cutoff"]).cumcount() + 1
    wanted = wanted[wanted["horizon"] <= wanted["unique_id"].map(horizons)]
    scales = _scales(history, wanted[["unique_id", "cutoff"]].drop_duplicates())
    losses = {
        key: _loss(part, quantiles, scales[key]) for key, part in wanted.groupby(["unique_id", "cutoff"], sort=True)
    }
    per_window = pd.Series(losses, dtype=float)
    per_window.index = per_window.index.set_names(["unique_id", "cutoff"])
    return per_window.groupby(level="unique_id").mean().reindex(models.index)


def judge(
    scores: pd.DataFrame, previous: pd.Series, tolerance: float, floor: float, min_weeks: int
) -> pd.DataFrame:
    """Degraded: live loss above ``tolerance`` x max(backtest loss, ``floor``), on enough weeks.

    ``consecutive`` counts degraded evaluations in a row (``previous``: the count at the
    series' last evaluation before this one).
    """
    judged = scores.copy()
    reference = judged["backtest_loss"].clip(lower=floor)
    judged["ratio"] = judged["live_loss"] / reference
    enough = (judged["n_weeks"] >= min_weeks) & judged["backtest_loss"].notna()
    judged["degraded"] = enough & (judged["ratio"] > tolerance)
    before = judged["unique_id"].map(previous).fillna(0).astype(int)
    judged["consecutive"] = np.where(judged["degraded"], before + 1, 0)
    judged["reason"] = np.select(
        [judged["backtest_loss"].isna(), judged["n_weeks"] < min_weeks, judged["degraded"]],
        ["no backtest of the published model", f"fewer than {min_weeks} weeks of actuals", "live loss above tolerance"],
        "within tolerance",
    )
    return judged
