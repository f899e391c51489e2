"""The shard's row frames are built with array operations and equal the row-by-row construction.

``selection_step._evidence_rows`` (per-window scores and backtest forecasts) once built one
small frame per series, window and candidate. The reference implementation below is that
loop, kept here verbatim; a shard selected with it and with the array version must give
identical frames. (The published rows come from ``data.forecast_rows``, tested against its
own reference in ``tests/unit/data/test_forecast_rows.py``.)
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from forecasting.config import load_settings
from forecasting.data.contract import ID, quantile_label
from forecasting.data.demo import generate_demo_panel
from forecasting.evaluation.losses import scale_denominator
from forecasting.training import selection_step
from forecasting.training.batch import backtest_batch
from forecasting.training.plan import TrainingPlan
from forecasting.training.selection_step import ShardResult, select_shard


def _reference_evidence_rows(series, evidence, labels, plan):  # type: ignore[no-untyped-def]
    h, lower, upper = plan.horizon, 0, len(plan.quantiles) - 1
    names = [quantile_label(q) for q in plan.quantiles]
    scores, backtest = [], []
    for i, s in enumerate(series):
        ends = {(s.y.size - h - w.train_end) // plan.step + 1: w.train_end for w in plan.windows(s.y.size)}
        for slot, end in sorted(ends.items(), reverse=True):
            actual = s.y[end : end + h]
            scale = scale_denominator(s.y[:end], m=1)
            for label in labels:
                values = evidence.forecasts[label][i, slot]
                if not np.isfinite(values).all() or not np.isfinite(evidence.losses[label][i, slot]):
                    continue
                cutoff = s.ds[end - 1]
                covered = (actual >= values[:, lower]) & (actual <= values[:, upper])
                scores.append({ID: s.uid, "candidate": label, "cutoff": cutoff,
                               "scaled_quantile_loss": float(evidence.losses[label][i, slot]),
                               "mase": float(np.mean(np.abs(actual - values[:, plan.quantiles.index(0.5)])) / scale),
                               "coverage": float(covered.mean()) if upper > lower else np.nan})
                frame = pd.DataFrame(values, columns=names)
                frame.insert(0, "y", actual)
                frame.insert(0, "ds", s.ds[end : end + h])
                frame.insert(0, "cutoff", cutoff)
                frame.insert(0, "candidate", label)
                frame.insert(0, ID, s.uid)
                backtest.append(frame)
    return pd.DataFrame(scores), (pd.concat(backtest, ignore_index=True) if backtest else pd.DataFrame())


def _shard(quantiles: tuple[float, ...]) -> tuple:  # type: ignore[type-arg]
    settings = load_settings(overrides={"forecast": {"quantiles": list(quantiles)},
                                        "compute": {"executor": "serial", "progress": False}})
    plan = TrainingPlan.from_settings(settings)
    plan = replace(plan, candidates=tuple(c for c in plan.candidates if not c.expensive))
    history = generate_demo_panel(n_series=30, n_periods=156, seed=5)
    history = history.sort_values([ID, "ds"], kind="stable").reset_index(drop=True)
    ids = sorted(history[ID].unique())
    lifecycle = pd.DataFrame({ID: ids, "lifecycle": "smooth",
                              "demand_class": ["intermittent" if k % 3 == 0 else "smooth" for k in range(len(ids))]})
    return backtest_batch(history, lifecycle, plan), history, lifecycle, plan, settings.forecast.freq


@pytest.mark.parametrize("quantiles", [(0.1, 0.5, 0.9), (0.5,)])
def test_shard_frames_equal_the_row_by_row_construction(monkeypatch: pytest.MonkeyPatch, quantiles) -> None:  # type: ignore[no-untyped-def]
    raw, history, lifecycle, plan, freq = _shard(quantiles)
    fast = select_shard(raw, history, lifecycle, plan, freq)
    monkeypatch.setattr(selection_step, "_evidence_rows", _reference_evidence_rows)
    slow = select_shard(raw, history, lifecycle, plan, freq)
    assert len(fast.scores) > 100 and len(fast.backtest) > 1000 and len(fast.forecasts) > 100
    for name in ShardResult.FRAMES:
        pd.testing.assert_frame_equal(getattr(fast, name), getattr(slow, name), check_exact=True, obj=name)
