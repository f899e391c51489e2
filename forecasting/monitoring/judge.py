"""Judge every series: its CUSUM over the points since its last retrain, and what it amounts to."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from forecasting.data.contract import ID
from forecasting.monitoring.cusum import CusumRule, run_cusum, weekly_increments

JUDGED_COLUMNS = [ID, "weeks", "points", "live_loss", "reference_loss", "ratio", "coverage", "statistic",
                  "threshold", "degraded", "pooled_reference", "last_week", "reason"]


def since_retrain(points: pd.DataFrame, retrained: Mapping[str, pd.Timestamp]) -> pd.DataFrame:
    """The points of forecasts published at or after each series' last retrain (all of them when none)."""
    if not retrained:
        return points
    reset = pd.to_datetime(points[ID].map(retrained))
    return points[reset.isna() | (points["forecast_origin"] >= reset)]


def judge(points: pd.DataFrame, rule: CusumRule) -> pd.DataFrame:
    """Per series of ``points`` (with ``reference``): the statistic, whether it is degraded, and why."""
    if points.empty:
        return pd.DataFrame(columns=JUDGED_COLUMNS)
    state = run_cusum(weekly_increments(points, rule), rule).set_index(ID)
    grouped = points.groupby(ID, sort=True)
    frame = pd.DataFrame({
        "live_loss": grouped["loss"].mean(),
        "reference_loss": grouped["reference"].mean(),
        "coverage": grouped["inside"].mean().astype(float),
        "pooled_reference": grouped["pooled"].any(),
    })
    frame["ratio"] = frame["live_loss"] / frame["reference_loss"]
    frame = frame.join(state[["weeks", "points", "statistic", "last_week"]], how="left")
    unjudged = frame["statistic"].isna()
    frame[["weeks", "points"]] = frame[["weeks", "points"]].fillna(0).astype(int)
    frame["statistic"] = frame["statistic"].fillna(0.0)
    frame["threshold"] = rule.threshold
    frame["degraded"] = ~unjudged & (frame["statistic"] >= rule.threshold)
    frame["reason"] = np.select(
        [unjudged, frame["degraded"]],
        ["no reference: neither a backtest of its own nor of its run",
         f"CUSUM reached {rule.threshold:g}: losses above the reference for weeks"],
        "within the rule",
    )
    return frame.reset_index()[JUDGED_COLUMNS]
