"""Gather the evidence of a champion decision: both versions choose on the same windows, scored on the next.

For each series both versions cover and the new run backtested:
- the decision window is the new run's last backtest window (cutoff ``C``);
- each version's selection rule (its candidates, their parameters, its ensemble settings)
  chooses the series' model on the whole windows that end at or before ``C`` (``heldout``):
  the new version on its own backtest, the champion on its candidates' forecasts at the
  same cutoffs (``champion_backtest``: shared candidates reused, the others refitted through
  its bundle);
- both choices' forecasts at ``C`` are scored on the decision window's actuals.
Neither side chose on the weeks it is scored on, and both had the same data to choose on, so
two versions of the same configuration tie, and a version is judged by what its rule picks,
ensembles included, by what they forecast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from forecasting.config import Settings
from forecasting.data.contract import ID
from forecasting.registry import evidence, heldout
from forecasting.registry.bundle import BundleForecaster
from forecasting.registry.champion_backtest import champion_backtest
from forecasting.registry.series_model import SeriesModel


@dataclass(frozen=True)
class NewRun:
    """What the decision reads of the new run."""

    settings: Settings
    as_of: str
    ledger: pd.DataFrame
    backtest: pd.DataFrame
    history: pd.DataFrame


def _in_sample(backtest: pd.DataFrame, ledger: pd.DataFrame, cutoffs: pd.Series) -> pd.DataFrame:
    """The new run's own winners' forecasts at the decision window (chosen on it: for comparison only)."""
    winners = ledger.set_index(ledger[ID].astype(str))
    rows = backtest[(backtest["candidate"] == backtest[ID].map(winners["winner"]))
                    & (backtest["cutoff"] == backtest[ID].map(cutoffs))]
    keys = rows[ID].map(lambda uid: SeriesModel.from_manifest(str(winners.at[uid, "model"]),
                                                                      winners.at[uid, "ensemble_members"]).key())
    return rows.drop(columns="y").assign(model_key=keys)


def _held_out(rows: pd.DataFrame, cutoffs: pd.Series, scales: pd.Series, settings: Settings) -> pd.DataFrame:
    cut = heldout.split(rows, cutoffs)
    return heldout.forecast_at(cut.decision, heldout.choose(cut.choosing, scales, settings), list(settings.forecast.quantiles))


def champion_evidence(new: NewRun, champion: BundleForecaster) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per-series evidence (``evidence.EVIDENCE_COLUMNS``) and its summary, with the decision window's dates."""
    settings = new.settings
    ledger = new.ledger[new.ledger["model"].fillna("").astype(str) != ""]
    ids = sorted(ledger[ID].astype(str))
    backtest = new.backtest.assign(unique_id=new.backtest[ID].astype(str))
    backtested = set(backtest[ID])
    known = set(champion.winners.index)
    reasons = {uid: "a new series: the champion does not know it" for uid in ids if uid not in known}
    reasons.update({uid: "no backtest in the new run (short history)" for uid in ids
                    if uid in known and uid not in backtested})
    common = [uid for uid in ids if uid not in reasons]
    backtest = backtest[backtest[ID].isin(common)]
    cutoffs = backtest.groupby(ID)["cutoff"].max()
    scales = heldout.scales_at(new.history, backtest[[ID, "cutoff"]].drop_duplicates())
    new_rows = _held_out(backtest, cutoffs, scales, settings)
    theirs = champion_backtest(champion, settings, backtest, new.history, common)
    champion_rows = _held_out(theirs, cutoffs, scales, champion.settings)
    actuals = backtest.loc[backtest["cutoff"] == backtest[ID].map(cutoffs), [ID, "ds", "y"]]
    decision_scales = pd.Series({uid: float(scales[(uid, c)]) for uid, c in cutoffs.items()}, dtype=float)
    frame = evidence.compare(
        new_rows, champion_rows, actuals.drop_duplicates([ID, "ds"]), cutoffs.reindex(ids), decision_scales,
        list(settings.forecast.quantiles), _in_sample(backtest, ledger, cutoffs), reasons,
    )
    summary = evidence.summarize(frame)
    if len(cutoffs):
        summary["window_cutoff"] = f"{cutoffs.max():%Y-%m-%d}"
    return frame, summary
