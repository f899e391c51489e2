"""Train a batch of series: the unit of work a shard (or a Dask task) runs.

Built-in candidates run in this process; plug-in candidates in child processes,
one per plug-in for the whole batch (``training.isolation``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecasting.data.contract import STATUS_QUARANTINED, quantile_label
from forecasting.training.isolation import SeriesOutcomes, run_isolated
from forecasting.training.plan import TrainingPlan
from forecasting.training.series import SeriesResult, series_arrays, train_series

logger = logging.getLogger(__name__)


@dataclass
class BatchResult:
    """Frames a batch produces: forecasts, ledger, per-window scores, backtest forecasts."""

    forecasts: pd.DataFrame
    ledger: pd.DataFrame
    scores: pd.DataFrame
    backtest: pd.DataFrame

    @classmethod
    def concat(cls, results: list[BatchResult]) -> BatchResult:
        def join(frames: list[pd.DataFrame]) -> pd.DataFrame:
            non_empty = [f for f in frames if not f.empty]
            if non_empty:
                return pd.concat(non_empty, ignore_index=True)
            return frames[0] if frames else pd.DataFrame()  # no shards: every series quarantined

        return cls(
            forecasts=join([r.forecasts for r in results]),
            ledger=join([r.ledger for r in results]),
            scores=join([r.scores for r in results]),
            backtest=join([r.backtest for r in results]),
        )


def _forecast_rows(result: SeriesResult, last_ds: pd.Timestamp, freq: str, plan: TrainingPlan) -> pd.DataFrame:
    assert result.forecast is not None
    frame = pd.DataFrame(
        {
            "unique_id": result.ledger["unique_id"],
            "ds": pd.date_range(last_ds, periods=plan.horizon + 1, freq=freq)[1:],
            "horizon": np.arange(1, plan.horizon + 1, dtype=np.int64),
        }
    )
    for q in plan.quantiles:
        frame[quantile_label(q)] = result.forecast[q]
    frame["model"] = result.ledger["model"]
    frame["status"] = result.ledger["status"]
    return frame


def _rename_quantiles(frame: pd.DataFrame, plan: TrainingPlan) -> pd.DataFrame:
    return frame.rename(columns={q: quantile_label(q) for q in plan.quantiles})


def train_batch(
    history: pd.DataFrame,
    lifecycle: pd.DataFrame,
    plan: TrainingPlan,
    freq: str,
    on_series_done: Callable[[], None] | None = None,
    previous_winners: Mapping[str, str] | None = None,
    precomputed: Mapping[str, SeriesOutcomes] | None = None,
) -> BatchResult:
    """Train every series of ``history`` (sorted long frame) with its lifecycle class.

    ``previous_winners``: series -> the champion version's model (for the switching margin).
    ``precomputed``: per series, the forecasts of the shard's global candidates (``training.global_step``).
    """
    previous_winners = previous_winners or {}
    classes = lifecycle.set_index("unique_id")["lifecycle"].to_dict()
    arrays = series_arrays(history)
    # Plug-in candidates first, for the whole batch: one child process per plug-in, not per series.
    isolated = run_isolated(plan, {uid: (y, classes[uid]) for uid, (_, y) in arrays.items()})
    for uid, outcomes in (precomputed or {}).items():
        if uid in isolated:
            isolated[uid].update(outcomes)
    forecasts, ledgers, scores, backtest = [], [], [], []
    for unique_id, (ds, y) in arrays.items():
        try:
            result = train_series(
                unique_id, ds, y, classes[unique_id], plan, isolated[unique_id], previous_winners.get(unique_id)
            )
        except Exception as exc:  # the chain's last resort failed: quarantine, never lose the batch
            logger.error("series %s: no model could forecast it: %s", unique_id, exc)
            result = SeriesResult(
                {"unique_id": unique_id, "status": STATUS_QUARANTINED, "reason": "all_models_failed",
                 "detail": str(exc)[:500], "lifecycle": classes[unique_id], "n_obs": int(y.size)}
            )
        ledgers.append(result.ledger)
        if result.forecast is not None:
            forecasts.append(_forecast_rows(result, pd.Timestamp(ds[-1]), freq, plan))
        scores.extend(result.scores)
        backtest.extend(result.backtest)
        if on_series_done:
            on_series_done()
    return BatchResult(
        forecasts=pd.concat(forecasts, ignore_index=True) if forecasts else pd.DataFrame(),
        ledger=pd.DataFrame(ledgers),
        scores=pd.DataFrame(scores),
        backtest=_rename_quantiles(pd.DataFrame(backtest), plan),
    )
