"""The switching margin: a series keeps the champion's model, as it was, unless the new winner is clearly better.

"As it was" means the champion's own model of the series, members and weights included: its
bundle is refitted at each of the new run's backtest cutoffs (``replay``) and scored on the
same windows as the new winner. A series keeps it (``kept_by_margin``) unless the new
winner's mean loss is lower by ``registry.switching_margin`` (``switched``); where the
champion's model cannot be scored on every window, the margin is not applied and
``margin_not_applied`` says why. Kept series are then forecast by the champion's model refitted
on the new history.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecasting.data.contract import ID, STATUS_OK, quantile_label
from forecasting.evaluation.losses import scale_denominator, scaled_quantile_loss
from forecasting.registry.bundle import BundleForecaster
from forecasting.registry.replay import replay
from forecasting.registry.series_model import SeriesModel

KEPT, SWITCHED, NOT_APPLIED = "kept_by_margin", "switched", "margin_not_applied"
SWITCH_COLUMNS = [ID, "selection", "previous_model", "previous_members", "previous_loss", "new_loss", "detail"]


def _window_losses(rows: pd.DataFrame, history: pd.DataFrame, quantiles: list[float]) -> pd.Series:
    """Scaled quantile loss of replayed forecasts per (unique_id, cutoff), on the actuals of their dates."""
    columns = [quantile_label(q) for q in quantiles]
    joined = rows.merge(history[[ID, "ds", "y"]], on=[ID, "ds"], how="inner")
    by_id = {uid: part.sort_values("ds") for uid, part in history.groupby(ID, sort=False)}
    losses = {}
    for (uid, cutoff), part in joined.groupby([ID, "cutoff"], sort=True):
        own = by_id[uid]
        scale = scale_denominator(own.loc[own["ds"] <= cutoff, "y"].to_numpy(float), m=1)
        forecasts = {q: part[c].to_numpy(float) for q, c in zip(quantiles, columns, strict=True)}
        losses[(uid, cutoff)] = scaled_quantile_loss(part["y"].to_numpy(float), forecasts, scale)
    return pd.Series(losses, dtype=float)


def decide_switching(ledger: pd.DataFrame, scores: pd.DataFrame, history: pd.DataFrame, champion: BundleForecaster,
                     margin: float, quantiles: list[float], horizon: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per series where the margin had a say: what it decided; and the champion's forecasts of the kept series."""
    history = history.assign(unique_id=history[ID].astype(str), ds=pd.to_datetime(history["ds"]))
    rows: list[dict] = []
    candidates = ledger[(ledger["status"] == STATUS_OK) & ledger[ID].astype(str).isin(champion.winners.index)]
    windows: dict[str, pd.Series] = {}
    for entry in candidates.itertuples(index=False):
        uid = str(entry.unique_id)
        previous, new = champion.model_of(uid), SeriesModel.from_manifest(str(entry.model), entry.ensemble_members)
        if previous is None or previous.key() == new.key():
            continue
        own = scores[(scores[ID].astype(str) == uid) & (scores["candidate"] == entry.winner)]
        windows[uid] = own.set_index("cutoff")["scaled_quantile_loss"].sort_index()
        rows.append({ID: uid, "selection": "", "previous_model": previous.label,
                     "previous_members": previous.members_text, "previous_loss": np.nan,
                     "new_loss": float(windows[uid].mean()) if len(windows[uid]) else np.nan, "detail": ""})
    decisions = pd.DataFrame(rows, columns=SWITCH_COLUMNS)
    if decisions.empty:
        return decisions, pd.DataFrame()
    n = max(len(w) for w in windows.values())
    replayed, failed = [], {}
    for i in range(n):
        cutoffs = pd.Series({uid: w.index[i] for uid, w in windows.items() if len(w) > i})
        part, failures = replay(champion, history, cutoffs, horizon)
        replayed.append(part)
        failed.update(failures)
    losses = _window_losses(pd.concat([r for r in replayed if len(r)], ignore_index=True), history, quantiles) \
        if any(len(r) for r in replayed) else pd.Series(dtype=float)
    for i, row in decisions.iterrows():
        uid = row[ID]
        own = [losses.get((uid, c), np.nan) for c in windows[uid].index]
        if uid in failed or not own or not np.isfinite(own).all() or not np.isfinite(row["new_loss"]):
            decisions.loc[i, ["selection", "detail"]] = [NOT_APPLIED, failed.get(uid, "the champion's model has no score "
                                                                                 "on every backtest window")[:300]]
            continue
        previous_loss = float(np.mean(own))
        kept = not row["new_loss"] < previous_loss * (1.0 - margin)
        decisions.loc[i, ["selection", "previous_loss"]] = [KEPT if kept else SWITCHED, previous_loss]
    kept_ids = decisions.loc[decisions["selection"] == KEPT, ID]
    if kept_ids.empty:
        return decisions, pd.DataFrame()
    last = history[history[ID].isin(set(kept_ids))].groupby(ID)["ds"].max()
    forecasts, failed = replay(champion, history, last, horizon)
    lost = decisions[ID].isin(failed)
    decisions.loc[lost & (decisions["selection"] == KEPT), ["selection", "detail"]] = [
        NOT_APPLIED, "the champion's model could not forecast the new origin"]
    return decisions, forecasts[~forecasts[ID].isin(failed)].drop(columns="cutoff")
