"""Champion or challenger: compare a new version with the champion on the same series and window.

Both are scored on the new run's most recent backtest window: the new version by its
series' chosen models, the champion by the models its manifest chose for the same series
(the new run backtested every candidate on that window, so the champion's choice has a
score there too). Series the champion's model has no score for (a candidate no longer
configured, or a median ensemble of other members) are left out and counted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from forecasting.evaluation.selection import ENSEMBLE_LABEL
from forecasting.evaluation.weighted_ensemble import WEIGHTED_LABEL

CHAMPION, CHALLENGER = "champion", "challenger"
TAG_PREFIX = "forecasting."


@dataclass(frozen=True)
class Decision:
    """The alias a new version receives, and the numbers behind it."""

    alias: str
    reason: str
    margin: float
    compared_with_version: str = ""
    window_cutoff: str = ""
    series_compared: int = 0
    series_not_comparable: int = 0
    new_loss: float = float("nan")
    champion_loss: float = float("nan")

    def tags(self) -> dict[str, str]:
        return {f"{TAG_PREFIX}decision.{k}": str(v) for k, v in asdict(self).items()}

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> Decision:
        prefix = f"{TAG_PREFIX}decision."
        values = {k[len(prefix):]: v for k, v in tags.items() if k.startswith(prefix)}
        return cls(
            alias=values["alias"], reason=values.get("reason", ""), margin=float(values.get("margin", 0)),
            compared_with_version=values.get("compared_with_version", ""), window_cutoff=values.get("window_cutoff", ""),
            series_compared=int(values.get("series_compared", 0)),
            series_not_comparable=int(values.get("series_not_comparable", 0)),
            new_loss=float(values.get("new_loss", "nan")), champion_loss=float(values.get("champion_loss", "nan")),
        )


ENSEMBLES = (ENSEMBLE_LABEL, WEIGHTED_LABEL)


def _key(frame: pd.DataFrame) -> pd.Series:
    members = frame["ensemble_members"].fillna("").astype(str)
    model = frame["model"].astype(str)
    return model.where(~model.isin(ENSEMBLES), model + ":" + members)


def decide(
    new: pd.DataFrame, champion: pd.DataFrame | None, scores: pd.DataFrame, margin: float, champion_version: str = ""
) -> Decision:
    """``new`` / ``champion``: winners manifests (unique_id, model, ensemble_members); ``scores``: the new run's."""
    if champion is None:
        return Decision(CHAMPION, "no champion yet", margin)
    if scores.empty:
        return Decision(CHALLENGER, "the new run has no backtest scores", margin, champion_version)
    cutoff = scores["cutoff"].max()
    window = scores[scores["cutoff"] == cutoff].set_index(["unique_id", "candidate"])["scaled_quantile_loss"]
    both = new.merge(champion, on="unique_id", suffixes=("_new", "_champion"))
    rows = []
    for side in ("new", "champion"):
        part = both[["unique_id", f"model_{side}", f"ensemble_members_{side}"]]
        part.columns = ["unique_id", "model", "ensemble_members"]
        rows.append(part.assign(key=_key(part).to_numpy()))
    new_side, champion_side = rows
    # an ensemble's score belongs to its members (and weights): comparable only when they are the same
    new_loss = window.reindex(list(zip(new_side["unique_id"], new_side["model"], strict=True))).to_numpy()
    champion_loss = window.reindex(list(zip(champion_side["unique_id"], champion_side["model"], strict=True))).to_numpy()
    ensemble = champion_side["model"].isin(ENSEMBLES).to_numpy()
    same_members = (champion_side["key"] == new_side["key"]).to_numpy()
    champion_loss = np.where(ensemble & ~same_members, np.nan, champion_loss)
    ok = np.isfinite(new_loss) & np.isfinite(champion_loss)
    common = int(len(both))
    if not ok.any():
        return Decision(CHALLENGER, "no series comparable with the champion", margin, champion_version,
                        str(pd.Timestamp(cutoff).date()), 0, common)
    new_mean, champion_mean = float(new_loss[ok].mean()), float(champion_loss[ok].mean())
    promote = new_mean <= champion_mean * (1.0 + margin)
    reason = ("not worse than the champion by more than the margin" if promote
              else "worse than the champion by more than the margin")
    return Decision(CHAMPION if promote else CHALLENGER, reason, margin, champion_version, str(pd.Timestamp(cutoff).date()),
                    int(ok.sum()), common - int(ok.sum()), new_mean, champion_mean)
