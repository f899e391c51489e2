"""The retraining rule: a one-sided CUSUM per series on the log ratio of live to reference loss.

Each target week whose actual arrived adds one increment: the mean, over the forecasts of that
week from every origin, of ``log(loss / reference)``, each clipped to ``[low, high]`` (one wild
week cannot decide alone; with ``low`` 0 a week better than the reference adds nothing rather
than cancelling a bad one, and the allowance alone brings the statistic down). The statistic
``S_t = max(0, S_{t-1} + x_t - drift)`` accumulates evidence only while losses run above the
reference by more than ``drift``; a series is degraded when ``S`` reaches ``threshold``.
Weeks without an actual add nothing (no increment, no decay), so a missing week neither
triggers nor resets anything. ``false_alarm_rate`` states the rule's rate under a given null
distribution of increments (by simulation), so a threshold can be chosen for a stated rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecasting.data.contract import ID


@dataclass(frozen=True)
class CusumRule:
    drift: float  # allowance per week, in log-ratio units
    threshold: float  # degraded when the statistic reaches it
    low: float = 0.0  # clip of a point's log ratio: better than the reference counts as equal to it
    high: float = 3.0  # exp(3) = 20 times the reference

    def scores(self, loss: np.ndarray, reference: np.ndarray) -> np.ndarray:
        ratio = np.asarray(loss, float) / np.asarray(reference, float)
        with np.errstate(divide="ignore"):
            return np.clip(np.log(ratio), self.low, self.high)


STATE_COLUMNS = [ID, "weeks", "points", "statistic", "peak", "alarm_week", "last_week"]


def weekly_increments(points: pd.DataFrame, rule: CusumRule) -> pd.DataFrame:
    """One increment per series and target week: the mean clipped log ratio of its points."""
    judged = points[np.isfinite(points["reference"]) & (points["reference"] > 0)]
    scored = judged.assign(score=rule.scores(judged["loss"].to_numpy(), judged["reference"].to_numpy()))
    grouped = scored.groupby([ID, "ds"], sort=True)["score"]
    return pd.DataFrame({"x": grouped.mean(), "points": grouped.size()}).reset_index()


def run_cusum(increments: pd.DataFrame, rule: CusumRule) -> pd.DataFrame:
    """Per series: weeks and points judged, the statistic now, its peak, and the first week it alarmed."""
    rows = []
    for uid, part in increments.groupby(ID, sort=True):
        statistic, peak, alarm = 0.0, 0.0, pd.NaT
        for week, x in zip(part["ds"], part["x"], strict=True):
            statistic = max(0.0, statistic + float(x) - rule.drift)
            peak = max(peak, statistic)
            if pd.isna(alarm) and statistic >= rule.threshold:
                alarm = week
        rows.append({ID: uid, "weeks": int(len(part)), "points": int(part["points"].sum()),
                     "statistic": statistic, "peak": peak, "alarm_week": alarm, "last_week": part["ds"].max()})
    return pd.DataFrame(rows, columns=STATE_COLUMNS)


def false_alarm_rate(increments: np.ndarray, rule: CusumRule, weeks: int = 13, paths: int = 20000, seed: int = 0) -> float:
    """Share of series that alarm within ``weeks`` when every increment is drawn from ``increments`` (the null)."""
    draws = np.random.default_rng(seed).choice(np.asarray(increments, float), size=(paths, weeks))
    statistic = np.zeros(paths)
    alarmed = np.zeros(paths, dtype=bool)
    for week in range(weeks):
        statistic = np.maximum(0.0, statistic + draws[:, week] - rule.drift)
        alarmed |= statistic >= rule.threshold
    return float(alarmed.mean())
