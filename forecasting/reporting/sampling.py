"""Which series get a fan chart in the report: a few informative ones, never all of them."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from forecasting.data.contract import ID, STATUS_FALLBACK, STATUS_QUARANTINED

LARGEST, WORST, CHANGED, FALLBACK = "largest", "worst loss", "changed winner", "fallback"


def choose_samples(
    ledger: pd.DataFrame,
    leaderboard: pd.DataFrame,
    volume: pd.Series,
    changed: Iterable[str] = (),
    cap: int = 12,
) -> dict[str, list[str]]:
    """Up to ``cap`` series, each with why it was chosen, taking the categories in turn.

    ``volume``: mean demand per series (largest first); worst = highest winner loss;
    changed = the winner differs from the previous run's; fallback = published by a
    fallback model. Quarantined series have no forecast and are never drawn.
    """
    drawable = set(ledger.loc[ledger["status"] != STATUS_QUARANTINED, ID].astype(str))
    winners = leaderboard[leaderboard["is_winner"]]
    queues = {
        LARGEST: [str(s) for s in volume.sort_values(ascending=False, kind="stable").index],
        WORST: [str(s) for s in winners.sort_values(["scaled_quantile_loss", ID], ascending=[False, True])[ID]],
        CHANGED: sorted(str(s) for s in changed),
        FALLBACK: sorted(ledger.loc[ledger["status"] == STATUS_FALLBACK, ID].astype(str)),
    }
    queues = {k: [s for s in v if s in drawable] for k, v in queues.items()}
    chosen: dict[str, list[str]] = {}
    positions = dict.fromkeys(queues, 0)
    while len(chosen) < cap and any(positions[k] < len(queues[k]) for k in queues):
        for category, queue in queues.items():
            if len(chosen) >= cap:
                break
            while positions[category] < len(queue):
                series = queue[positions[category]]
                positions[category] += 1
                if series not in chosen:
                    chosen[series] = [category]
                    break
                if category not in chosen[series]:
                    chosen[series].append(category)
    return chosen
