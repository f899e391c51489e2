"""The evidence of a champion decision: both versions' forecasts scored on weeks neither chose on.

Per series: both versions' held-out forecasts (``comparison``) are scored with the scaled
quantile loss on the actuals after ``start`` (the decision window's cutoff), at the same dates
and horizons. A series is compared only when both forecasts and at least one such actual
exist; otherwise the frame says why not.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from forecasting.data.contract import ID, quantile_label
from forecasting.evaluation.losses import scaled_quantile_loss

EVIDENCE_COLUMNS = [ID, "compared", "reason", "new_model", "champion_model", "weeks", "new_loss",
                    "champion_loss", "new_loss_in_sample"]


def _loss(rows: pd.DataFrame, columns: Sequence[str], quantiles: Sequence[float], scale: float) -> float:
    return scaled_quantile_loss(rows["y"].to_numpy(float), {q: rows[c].to_numpy(float) for q, c in zip(quantiles, columns, strict=True)}, scale)


def compare(new: pd.DataFrame, champion: pd.DataFrame, actuals: pd.DataFrame, start: pd.Series, scales: pd.Series,
            quantiles: Sequence[float], in_sample: pd.DataFrame | None = None,
            reasons: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Per series of ``start``: compared or why not, the weeks scored and both losses.

    ``new`` / ``champion`` / ``in_sample``: forecast rows (unique_id, ds, quantile columns,
    ``model_key``); ``actuals``: (unique_id, ds, y); ``scales``: per series, the loss scale at
    the decision window's cutoff; ``reasons``: series already known not to be comparable.
    """
    columns = [quantile_label(q) for q in quantiles]
    reasons = dict(reasons or {})
    by = {name: {str(u): p for u, p in frame.groupby(ID, sort=False)} if frame is not None and len(frame) else {}
          for name, frame in (("new", new), ("champion", champion), ("in_sample", in_sample), ("actuals", actuals))}
    rows: list[dict[str, Any]] = []
    for uid in sorted(start.index.astype(str)):
        row: dict[str, Any] = {ID: uid, "compared": False, "reason": reasons.get(uid, ""), "new_model": "",
                               "champion_model": "", "weeks": 0, "new_loss": np.nan, "champion_loss": np.nan,
                               "new_loss_in_sample": np.nan}
        new_rows, champion_rows = by["new"].get(uid), by["champion"].get(uid)
        if new_rows is not None:
            row["new_model"] = str(new_rows["model_key"].iloc[0])
        if champion_rows is not None:
            row["champion_model"] = str(champion_rows["model_key"].iloc[0])
        if not row["reason"]:
            row["reason"] = _why_not(new_rows, champion_rows)
        if row["reason"]:
            rows.append(row)
            continue
        observed = by["actuals"].get(uid, pd.DataFrame(columns=["ds", "y"]))
        observed = observed[(observed["ds"] > start[uid]) & observed["y"].notna()][["ds", "y"]]
        both = observed.merge(new_rows[["ds", *columns]], on="ds").merge(
            champion_rows[["ds", *columns]], on="ds", suffixes=("", "_champion"))
        if both.empty:
            row["reason"] = "no actual in the decision window"
            rows.append(row)
            continue
        scale = float(scales[uid])
        row.update(compared=True, weeks=int(len(both)), new_loss=_loss(both, columns, quantiles, scale),
                   champion_loss=_loss(both, [f"{c}_champion" for c in columns], quantiles, scale))
        sample = by["in_sample"].get(uid)
        if sample is not None:
            scored = both[["ds", "y"]].merge(sample[["ds", *columns]], on="ds")
            if len(scored) == len(both):
                row["new_loss_in_sample"] = _loss(scored, columns, quantiles, scale)
        rows.append(row)
    return pd.DataFrame(rows, columns=EVIDENCE_COLUMNS)


def _why_not(new_rows: pd.DataFrame | None, champion_rows: pd.DataFrame | None) -> str:
    if new_rows is None:
        return "no held-out choice of the new version (no backtest window before the decision window)"
    if champion_rows is None:
        return "no held-out choice of the champion (none of its candidates forecast the windows)"
    return ""


def summarize(frame: pd.DataFrame) -> dict[str, Any]:
    """Counts, mean losses over the compared series, the paired difference and its standard error."""
    compared = frame[frame["compared"]]
    reasons = frame.loc[~frame["compared"], "reason"].value_counts().sort_index()
    summary: dict[str, Any] = {
        "series_compared": int(len(compared)),
        "series_not_comparable": int(len(frame) - len(compared)),
        "not_comparable": json.dumps({str(k): int(v) for k, v in reasons.items()}, sort_keys=True),
        "weeks": int(compared["weeks"].sum()),
        "new_loss": math.nan, "champion_loss": math.nan, "new_loss_in_sample": math.nan,
        "difference_se": math.nan, "share_new_better": math.nan,
    }
    if len(compared):
        difference = compared["new_loss"] - compared["champion_loss"]
        summary.update(
            new_loss=float(compared["new_loss"].mean()),
            champion_loss=float(compared["champion_loss"].mean()),
            difference_se=float(difference.std(ddof=1) / math.sqrt(len(difference))) if len(difference) > 1 else math.nan,
            share_new_better=float((difference < 0).mean()),
        )
        sample = compared["new_loss_in_sample"].dropna()
        if len(sample):
            summary["new_loss_in_sample"] = float(sample.mean())
    return summary
