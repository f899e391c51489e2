"""The new version's held-out choice: its selection rule applied to the windows before the decision weeks.

A version chose its winners on every backtest window, so its winners' loss on those windows
flatters it. The champion decision instead scores what the run's selection rule would have
chosen without the decision weeks: ``choose`` sees only the windows that end before them
(``split`` cuts the backtest so), and ``forecast_at`` then builds the chosen models' forecasts
at the decision window from their members' backtest forecasts, without reading its actuals.

The rule is training's (``evaluation.procedure.choose``), run on the windows before the
decision weeks: the pooled ensemble, whose backtest forecasts at each window were built
forward-only (members, weights and calibration from earlier windows), unless a single
candidate beats it there by the selection margin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecasting.config import Settings
from forecasting.data.contract import ID, quantile_label
from forecasting.evaluation import procedure
from forecasting.evaluation.losses import scale_denominator, scaled_quantile_loss
from forecasting.evaluation.procedure import ENSEMBLE
from forecasting.evaluation.selection import rank_candidates
from forecasting.registry.series_model import QuantileForecast, SeriesModel


@dataclass(frozen=True)
class Split:
    """The backtest cut at each series' decision start: rows to choose on, forecasts to score."""

    choosing: pd.DataFrame  # whole windows that end at or before the series' decision start (actuals included)
    decision: pd.DataFrame  # the last window's forecasts, without actuals
    cutoffs: pd.Series  # series -> the decision window's cutoff


def split(backtest: pd.DataFrame, decision_start: pd.Series) -> Split:
    """``decision_start``: per series, the last date a side may have chosen on (the decision weeks follow it)."""
    frame = backtest[backtest[ID].isin(decision_start.index)]
    cutoffs = frame.groupby(ID)["cutoff"].max()
    window_end = frame.groupby([ID, "cutoff"])["ds"].transform("max")
    start = frame[ID].map(decision_start)
    choosing = frame[window_end <= start]
    decision = frame[frame["cutoff"] == frame[ID].map(cutoffs)].drop(columns="y")
    return Split(choosing.reset_index(drop=True), decision.reset_index(drop=True), cutoffs)


def scales_at(history: pd.DataFrame, pairs: pd.DataFrame) -> pd.Series:
    """The loss scale of each (unique_id, cutoff): mean absolute one-step change of the history up to it."""
    by_id = {str(uid): part.sort_values("ds") for uid, part in history.groupby(ID, sort=False)}
    values = []
    for uid, cutoff in pairs[[ID, "cutoff"]].itertuples(index=False):
        part = by_id.get(str(uid))
        y = part.loc[part["ds"] <= cutoff, "y"].to_numpy(float) if part is not None else np.array([])
        values.append(scale_denominator(y, m=1))
    return pd.Series(values, index=pd.MultiIndex.from_frame(pairs[[ID, "cutoff"]]), dtype=float)


def _per_window(series: pd.DataFrame, quantiles: Sequence[float]) -> tuple[dict[str, list[QuantileForecast]], list[np.ndarray], list[pd.Timestamp]]:
    """Per candidate, its forecast in each window (only candidates present in every window)."""
    columns = [quantile_label(q) for q in quantiles]
    cutoffs = sorted(series["cutoff"].unique())
    forecasts: dict[str, list[QuantileForecast]] = {}
    actuals: list[np.ndarray] = []
    for i, cutoff in enumerate(cutoffs):
        window = series[series["cutoff"] == cutoff].sort_values(["candidate", "ds"])
        for candidate, rows in window.groupby("candidate", sort=False):
            values = rows[columns].to_numpy(float)
            if not np.isfinite(values).all():
                continue
            forecasts.setdefault(str(candidate), [None] * len(cutoffs))[i] = {  # type: ignore[list-item]
                q: values[:, j] for j, q in enumerate(quantiles)
            }
        actuals.append(window.drop_duplicates("ds").sort_values("ds")["y"].to_numpy(float))
    complete = {label: per for label, per in forecasts.items() if all(f is not None for f in per)}
    return complete, actuals, cutoffs


def _mean_loss(model: SeriesModel, forecasts: Mapping[str, list[QuantileForecast]], actuals: list[np.ndarray],
               scales: list[float]) -> float:
    return float(np.mean([
        scaled_quantile_loss(actuals[i], model.combine({m: forecasts[m][i] for m in model.labels}), scales[i])
        for i in range(len(actuals))
    ]))


def choose(choosing: pd.DataFrame, scales: pd.Series, settings: Settings) -> dict[str, SeriesModel]:
    """Per series, the model the run's selection rule picks on ``choosing`` alone (no entry: nothing to choose on).

    The rule is training's (``evaluation.procedure.choose``): the pooled ensemble, whose
    backtest forecasts are already forward-only, unless a single candidate beats it by
    ``selection.margin`` in most of the windows; without ensemble rows, the single candidate
    with the lowest mean loss.
    """
    order = [c.label for c in settings.models.candidates]
    quantiles = list(settings.forecast.quantiles)
    chosen: dict[str, SeriesModel] = {}
    for uid, series in choosing.groupby(ID, sort=True):
        forecasts, actuals, cutoffs = _per_window(series, quantiles)
        singles = [label for label in order if label in forecasts]
        labels = [*singles, ENSEMBLE] if ENSEMBLE in forecasts else singles
        if not singles:
            continue
        window_scales = [float(scales[(uid, c)]) for c in cutoffs]
        losses = {label: np.array([[scaled_quantile_loss(actuals[i], forecasts[label][i], window_scales[i])
                                    for i in range(len(cutoffs))]]) for label in labels}
        if ENSEMBLE in losses:
            label = procedure.choose(losses, singles, settings.selection.margin, settings.selection.min_windows,
                                     list(range(len(cutoffs))))[0]
        else:
            label = rank_candidates({label: float(losses[label].mean()) for label in singles}, order)[0]
        chosen[str(uid)] = SeriesModel.single(label)
    return chosen


def forecast_at(decision: pd.DataFrame, models: Mapping[str, SeriesModel], quantiles: Sequence[float]) -> pd.DataFrame:
    """Each chosen model's forecast at the decision window, from its members' backtest forecasts.

    ``decision`` carries no actuals. A series whose model has a member without a forecast
    there is left out.
    """
    columns = [quantile_label(q) for q in quantiles]
    frames = []
    for uid, series in decision[decision[ID].isin(models.keys())].groupby(ID, sort=True):
        model = models[str(uid)]
        by_label = {str(label): rows.sort_values("ds") for label, rows in series.groupby("candidate", sort=False)}
        if not set(model.labels) <= set(by_label):
            continue
        dates = by_label[model.labels[0]]["ds"].to_numpy()
        members = {m: {q: by_label[m][c].to_numpy(float) for q, c in zip(quantiles, columns, strict=True)}
                   for m in model.labels}
        combined = model.combine(members)
        frame = pd.DataFrame({ID: str(uid), "ds": dates, "model_key": model.key()})
        for q, column in zip(quantiles, columns, strict=True):
            frame[column] = combined[q]
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=[ID, "ds", "model_key", *columns])
    return pd.concat(frames, ignore_index=True)
