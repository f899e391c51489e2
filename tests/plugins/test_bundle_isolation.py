"""A loaded bundle runs its plug-ins in child processes, as training does.

The fixture plug-in exits the process (``os._exit``) on the series whose first value is its
trigger: run in the loading process it would end this test run; isolated, it costs that series
its model (the bundle's fallback forecasts it) and the other series keep the plug-in's forecasts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecasting.config import load_settings
from forecasting.registry.bundle import BundleForecaster

N, TRIGGER = 40, 7000.0


def test_a_plugin_that_kills_its_process_costs_only_its_series(fixture_plugins):
    t = np.arange(N, dtype=np.float64)
    history = pd.concat([
        pd.DataFrame({"unique_id": uid, "ds": pd.date_range("2024-01-07", periods=N, freq="W-SUN"),
                      "y": level + 10.0 * np.sin(t / 3.0)})
        for uid, level in (("fine", 100.0), ("trigger", TRIGGER), ("also-fine", 300.0))
    ], ignore_index=True)
    settings = load_settings(None, {
        "models": {"candidates": [{"name": "Misbehaving", "params": {"mode": "exit", "trigger": TRIGGER}}],
                   "fallback": ["Naive"]},
        "plugins": {"timeout_seconds": 60.0},
    })
    winners = pd.DataFrame({"unique_id": ["fine", "trigger", "also-fine"], "model": "Misbehaving",
                            "ensemble_members": "", "status": "ok"})

    rows = BundleForecaster(settings, winners, history).forecast(history, 4)

    by_series = rows.drop_duplicates("unique_id").set_index("unique_id")
    assert by_series.loc["trigger", ["model", "status"]].tolist() == ["Naive", "fallback"]
    assert by_series.loc[["fine", "also-fine"], "model"].tolist() == ["Misbehaving", "Misbehaving"]
    fine = rows[rows["unique_id"] == "fine"]
    last = history.loc[history["unique_id"] == "fine", "y"].iloc[-1]
    np.testing.assert_allclose(fine["p50"], last)  # the plug-in's own forecast: its last value
