"""The bundle forecasts each series with its manifest's model, ensembles included."""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecasting.config import load_settings
from forecasting.data.demo import generate_demo_panel
from forecasting.evaluation.weighted_ensemble import WEIGHTED_LABEL, combine
from forecasting.registry.bundle import BundleForecaster

CANDIDATES = [{"name": "Naive"}, {"name": "SeasonalNaive"}, {"name": "HistoricAverage"}]


def test_weighted_and_median_ensembles_are_rebuilt_from_their_members():
    settings = load_settings(None, {"models": {"candidates": CANDIDATES}})
    history = generate_demo_panel(3, 120, "W-SUN", "2025-12-28", 3)
    ids = sorted(history["unique_id"].unique())
    winners = pd.DataFrame({
        "unique_id": ids,
        "model": [WEIGHTED_LABEL, "MedianEnsemble", "Naive"],
        "ensemble_members": ["Naive:0.75,HistoricAverage:0.25", "Naive,SeasonalNaive,HistoricAverage", ""],
        "status": "ok",
    })
    bundle = BundleForecaster(settings, winners, history)

    models = {uid: bundle._forecast_one(uid, history.loc[history["unique_id"] == uid, "y"].to_numpy(float), 13)
              for uid in ids}

    assert [models[uid][:2] for uid in ids] == [(WEIGHTED_LABEL, "ok"), ("MedianEnsemble", "ok"), ("Naive", "ok")]
    y = history.loc[history["unique_id"] == ids[0], "y"].to_numpy(float)
    members = {label: bundle._fit(label, y, 13) for label in ("Naive", "HistoricAverage")}
    expected = combine(members, {"Naive": 0.75, "HistoricAverage": 0.25})
    np.testing.assert_allclose(models[ids[0]][2][0.5], expected[0.5])
