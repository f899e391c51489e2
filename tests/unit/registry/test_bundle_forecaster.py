"""The bundle forecasts each series with its manifest's model as training fitted it: ensembles from
their members and weights, global LightGBM on its training panel with the run's parameters,
the real calendar and the covariates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecasting.config import load_settings
from forecasting.data.covariates import covariate_spec
from forecasting.data.demo import generate_demo_panel
from forecasting.evaluation.quality import quality_gate
from forecasting.evaluation.weighted_ensemble import WEIGHTED_LABEL, combine
from forecasting.registry.bundle import BundleForecaster
from forecasting.training.fitting import forecast_quantiles
from forecasting.training.global_step import train_global
from forecasting.training.plan import TrainingPlan

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
    rows = BundleForecaster(settings, winners, history).forecast(history, 13)

    first = rows.drop_duplicates("unique_id").set_index("unique_id")
    assert list(first["model"]) == [WEIGHTED_LABEL, "MedianEnsemble", "Naive"] and set(first["status"]) == {"ok"}
    assert list(first["model_key"]) == ["weighted(HistoricAverage:0.25,Naive:0.75)",
                                        "median(HistoricAverage,Naive,SeasonalNaive)", "Naive"]
    plan = TrainingPlan.from_settings(settings)
    y = history.loc[history["unique_id"] == ids[0], "y"].to_numpy(float)
    members = {c.label: forecast_quantiles(c.model, y, 13, plan.quantiles, plan.conformal_windows, 30.0)
               for c in plan.candidates if c.label in ("Naive", "HistoricAverage")}
    expected = combine(members, {"Naive": 0.75, "HistoricAverage": 0.25})
    np.testing.assert_allclose(rows.loc[rows["unique_id"] == ids[0], "p50"], expected[0.5])


def test_a_global_lightgbm_winner_is_refitted_on_its_panel_as_backtested(tmp_path: Path):
    """Friday weeks (no made-up W-SUN calendar), a promotion covariate, and parameters that are not the defaults."""
    history = generate_demo_panel(6, 90, "W-FRI", "2025-12-26", 5).sort_values(["unique_id", "ds"]).reset_index(drop=True)
    ids = sorted(history["unique_id"].unique())
    dates = pd.date_range(history["ds"].min(), periods=90 + 13, freq="W-FRI")
    promo = pd.DataFrame([(uid, d, float(i % 5 == 0)) for uid in ids for i, d in enumerate(dates)],
                         columns=["unique_id", "ds", "promo"])
    promo.to_csv(tmp_path / "promo.csv", index=False)
    params = {"n_estimators": 15, "num_leaves": 5, "min_child_samples": 5, "target_transform": "difference"}
    settings = load_settings(None, {
        "forecast": {"freq": "W-FRI", "horizon": 5},
        "models": {"candidates": [{"name": "LightGBM", "params": params}, {"name": "Naive"}]},
        "covariates": {"path": str(tmp_path / "promo.csv"), "known_in_advance": ["promo"]},
    })
    plan = TrainingPlan.from_settings(settings)
    from forecasting.data.covariates import load_covariates

    covariates = load_covariates(covariate_spec(settings), ids, "W-FRI", 5)
    trained = train_global(history, dict.fromkeys(ids, "smooth"), plan, "W-FRI", covariates)
    winners = pd.DataFrame({"unique_id": ids, "model": "LightGBM", "ensemble_members": "", "status": "ok",
                            "global_group": "run/shard-0000", "pool": "run/shard-0000/smooth"})
    fitted = {"run/shard-0000": {"LightGBM": trained.info["LightGBM"]["params"]}}
    # LightGBM forecasts its median; the pool's calibrator puts p10 / p90 one series scale below / above it
    offsets = [[-1.0, 0.0, 1.0]] * 5
    one_bin = [{"bin": 0, "volatility_from": -np.inf, "volatility_to": np.inf, "n_scores": [50] * 5, "offsets": offsets}]
    calibration = {"run/shard-0000/smooth": json.dumps({"LightGBM": one_bin, "Naive": one_bin})}
    bundle = BundleForecaster(settings, winners, history, fitted, calibration=calibration)

    rows = bundle.forecast(history, 5)

    for uid in ids:
        y = history.loc[history["unique_id"] == uid, "y"].to_numpy(float)
        median = trained.outcomes[uid]["LightGBM"][y.size][0.5]
        scale = np.abs(np.diff(y)).mean()
        band = {0.1: median - scale, 0.5: median, 0.9: median + scale}
        expected = quality_gate({q: np.maximum(v, 0.0) for q, v in band.items()}, y, plan.explosion_factor).quantiles
        own = rows[rows["unique_id"] == uid]
        assert set(own["model"]) == {"LightGBM"} and set(own["status"]) == {"ok"}
        last = history.loc[history["unique_id"] == uid, "ds"].max()
        assert own["ds"].iloc[0] == last + pd.Timedelta(weeks=1) and own["ds"].dt.dayofweek.eq(4).all()  # Fridays
        for q, column in ((0.1, "p10"), (0.5, "p50"), (0.9, "p90")):
            np.testing.assert_allclose(own[column].to_numpy(), expected[q], rtol=1e-9)


def test_the_bundle_chain_falls_back_and_names_what_failed():
    """The manifest's model first, then the configured fallback models (``evaluation.fallback``):
    ``ok`` only for a known series' own model; a series no link can forecast is left out and named."""
    settings = load_settings(None, {"models": {"candidates": CANDIDATES, "fallback": ["Naive", "HistoricAverage"]}})
    history = generate_demo_panel(8, 120, "W-SUN", "2025-12-28", 3)
    sizes = history.groupby("unique_id").size()
    known, missing, unknown, broken = sorted(sizes[sizes == 120].index)[:4]
    history = history[history["unique_id"].isin([known, missing, unknown, broken])].reset_index(drop=True)
    history.loc[(history["unique_id"] == broken) & (history["ds"] == history["ds"].max()), "y"] = np.nan
    winners = pd.DataFrame({"unique_id": [known, missing, broken], "model": ["SeasonalNaive", "NotConfigured", "Naive"],
                            "ensemble_members": "", "status": "ok"})
    failed: dict[str, str] = {}

    rows = BundleForecaster(settings, winners, history).forecast(history, 4, failed)

    first = rows.drop_duplicates("unique_id").set_index("unique_id")
    assert first.loc[known, ["model", "status"]].tolist() == ["SeasonalNaive", "ok"]
    assert first.loc[missing, ["model", "status"]].tolist() == ["Naive", "fallback"]  # its model cannot be built here
    assert first.loc[unknown, ["model", "status"]].tolist() == ["Naive", "fallback"]  # not in the manifest
    assert broken not in first.index and list(failed) == [broken]
    assert failed[broken].startswith(f"series {broken}: every model of the bundle's chain failed: Naive: ")
    assert "; HistoricAverage: ValueError: " in failed[broken]
    with pytest.raises(RuntimeError, match="every model of the bundle's chain failed"):
        BundleForecaster(settings, winners, history).forecast(history, 4)
