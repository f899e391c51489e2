"""The vectorised baselines (``models.array_baselines``) give the per-series path's forecasts.

Naive, SeasonalNaive, HistoricAverage and WindowAverage are computed for a whole batch at
every origin with array operations; the per-series path fits one statsforecast object per
series and origin (``training.backtest.candidate_forecasts``). Both must agree to 1e-9 on a
demo panel that holds short, intermittent and constant series, every quantile included.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from forecasting.config import load_settings
from forecasting.data.demo import generate_demo_panel
from forecasting.models import array_baselines
from forecasting.models.catalog import build_model
from forecasting.training import batch as batch_module
from forecasting.training.backtest import candidate_forecasts
from forecasting.training.batch import backtest_batch, series_arrays
from forecasting.training.plan import Candidate, IsolationLimits, TrainingPlan

SEASON = 52
QUANTILES = (0.05, 0.1, 0.5, 0.9, 0.95)
NAMES = ("Naive", "SeasonalNaive", "HistoricAverage", "WindowAverage")


def _panel() -> pd.DataFrame:
    """Demo series (smooth, seasonal, intermittent, new = short) plus constant and tiny histories."""
    panel = generate_demo_panel(n_series=40, n_periods=156, seed=3)
    ds = pd.date_range(end=panel["ds"].max(), periods=156, freq="W-SUN")
    extra = [
        pd.DataFrame({"unique_id": "const", "ds": ds, "y": 7.0}),
        pd.DataFrame({"unique_id": "const-tenth", "ds": ds[-60:], "y": 0.1}),
        pd.DataFrame({"unique_id": "zeros", "ds": ds[-30:], "y": 0.0}),
        pd.DataFrame({"unique_id": "one-season", "ds": ds[-SEASON:], "y": np.arange(SEASON, dtype=float) % 5}),
        pd.DataFrame({"unique_id": "two", "ds": ds[-2:], "y": [3.0, 4.0]}),
        pd.DataFrame({"unique_id": "large", "ds": ds, "y": 1e9 + np.arange(156.0)}),
    ]
    frame = pd.concat([panel, *extra], ignore_index=True)
    return frame.sort_values(["unique_id", "ds"], kind="stable").reset_index(drop=True)


def _plan(quantiles: tuple[float, ...] = QUANTILES) -> TrainingPlan:
    settings = load_settings(overrides={"forecast": {"quantiles": list(quantiles)},
                                        "compute": {"executor": "serial", "progress": False}})
    return TrainingPlan.from_settings(settings)


@pytest.mark.parametrize("name", NAMES)
def test_batch_forecasts_equal_the_per_series_path(name: str) -> None:
    plan = _plan()
    model = build_model(name, {}, SEASON)
    assert array_baselines.supports(model)
    arrays = series_arrays(_panel())
    ys = [y for _, y in arrays.values()]
    pairs, expected = [], []
    for i, y in enumerate(ys):
        needed = model.min_history(SEASON)
        ends = [w.train_end for w in plan.windows(y.size) if w.train_end >= needed]
        if y.size < needed:
            continue
        found, failures = candidate_forecasts(model, y, ends, plan.horizon, QUANTILES)
        assert not failures
        for end in [*ends, y.size]:
            pairs.append((i, end))
            expected.append(found[end])
    assert len(pairs) > 100
    got = array_baselines.batch_forecasts(model, ys, pairs, plan.horizon, QUANTILES)
    for q in QUANTILES:
        want = np.vstack([e[q] for e in expected])
        assert got[q].shape == want.shape
        np.testing.assert_allclose(got[q], want, rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=f"{name} q={q}")


def test_backtest_batch_equals_the_per_series_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole raw frame of a batch (every candidate, origin and quantile) is the same either way."""
    history = _panel()
    plan = _plan()
    lifecycle = pd.DataFrame({"unique_id": sorted(history["unique_id"].unique())})
    lifecycle["lifecycle"] = "smooth"
    lifecycle["demand_class"] = np.where(lifecycle["unique_id"].str.contains("intermittent|zeros|const-tenth"),
                                         "intermittent", "smooth")
    cheap = tuple(c for c in plan.candidates if not c.expensive)  # the Auto* models are the same code either way
    plan = replace(plan, candidates=cheap)
    assert {c.label for c in batch_module.vectorised_candidates(plan)} == set(NAMES)
    fast = backtest_batch(history, lifecycle, plan)
    monkeypatch.setattr(array_baselines, "supports", lambda model: False)
    assert batch_module.vectorised_candidates(plan) == []
    slow = backtest_batch(history, lifecycle, plan)
    assert list(fast.raw.columns) == list(slow.raw.columns)
    assert len(fast.raw) == len(slow.raw) > 0
    keys = ["unique_id", "candidate", "length", "step"]
    pd.testing.assert_frame_equal(fast.raw[keys], slow.raw[keys])
    values = [c for c in fast.raw.columns if c not in keys]
    np.testing.assert_allclose(fast.raw[values].to_numpy(), slow.raw[values].to_numpy(), rtol=1e-9, atol=1e-9,
                               equal_nan=True)
    pd.testing.assert_frame_equal(fast.notes, slow.notes)
    assert set(NAMES) <= set(fast.raw["candidate"])


def test_only_the_builtin_baselines_are_vectorised() -> None:
    plan = _plan()
    labels = {c.label for c in batch_module.vectorised_candidates(plan)}
    assert labels == {"Naive", "SeasonalNaive", "HistoricAverage", "WindowAverage"}
    assert not array_baselines.supports(build_model("AutoETS", {}, SEASON))
    subclass = type("MyNaive", (type(build_model("Naive", {}, SEASON)),), {})
    assert not array_baselines.supports(subclass())
    isolated = replace(plan, candidates=(Candidate("Naive", build_model("Naive", {}, SEASON), isolation=IsolationLimits(60.0, 512)),),
                       fallbacks=())
    assert batch_module.vectorised_candidates(isolated) == []  # a precomputed candidate stays where it is


def test_a_non_finite_forecast_fails_like_the_per_series_path() -> None:
    """A history whose squares overflow gives an infinite interval: that origin fails, as a fit would."""
    y = np.full(60, 1e200)
    y[::2] = -1e200
    model = build_model("Naive", {}, SEASON)
    got = array_baselines.batch_forecasts(model, [y], [(0, 60)], 13, QUANTILES)
    _, failures = candidate_forecasts(model, y, [], 13, QUANTILES)
    assert not np.isfinite(got[0.1]).all()
    assert failures == {60: "ValueError: non-finite forecast"}
