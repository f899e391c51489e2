"""Losses on hand-computed numbers, and fixed points on the real M4 Weekly data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from utilsforecast import losses as ufl

from forecasting.data.contract import quantile_label
from forecasting.evaluation.losses import (
    interval_coverage,
    mase,
    owa,
    pinball_loss,
    scale_denominator,
    scaled_quantile_loss,
    score_panel,
    smape,
)

DECILES = [round(0.1 * i, 1) for i in range(1, 10)]


def test_pinball_loss_is_asymmetric() -> None:
    np.testing.assert_allclose(pinball_loss([10, 10], [8, 12], 0.9), [1.8, 0.2])
    np.testing.assert_allclose(pinball_loss([10, 10], [8, 12], 0.1), [0.2, 1.8])
    np.testing.assert_allclose(pinball_loss([10, 10], [8, 12], 0.5), [1.0, 1.0])


def test_pinball_loss_rejects_quantile_outside_unit_interval() -> None:
    with pytest.raises(ValueError, match="quantile"):
        pinball_loss([1.0], [1.0], 1.5)


def test_scale_denominator_is_mean_absolute_seasonal_difference() -> None:
    assert scale_denominator(np.array([1, 3, 2, 6])) == pytest.approx(7 / 3)
    assert scale_denominator(np.array([1, 3, 2, 6]), m=2) == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("history", "m", "expected"),
    [
        ([5.0, 5.0, 5.0], 1, 5.0),  # constant: mean absolute level
        ([-2.0, -2.0], 1, 2.0),
        ([4.0], 1, 4.0),  # too short for a difference
        ([1.0, 3.0], 2, 2.0),
        ([0.0, 0.0, 0.0], 1, 1.0),  # all zero: 1
        ([], 1, 1.0),
    ],
)
def test_scale_denominator_fallbacks(history: list[float], m: int, expected: float) -> None:
    assert scale_denominator(np.array(history), m) == pytest.approx(expected)


def test_scaled_quantile_loss_has_factor_two() -> None:
    # q=0.1: errors (2, 2) -> rho (0.2, 0.2); q=0.9: errors (-2, -4) -> rho (0.2, 0.4).
    # mean rho 0.25, times 2 over scale 4.
    forecasts = {0.1: np.array([8.0, 18.0]), 0.9: np.array([12.0, 24.0])}
    loss = scaled_quantile_loss(np.array([10.0, 20.0]), forecasts, scale=4.0)
    assert loss == pytest.approx(0.125)


def test_mase() -> None:
    assert mase([10.0, 20.0], [12.0, 17.0], scale=2.0) == pytest.approx(1.25)


def test_smape_counts_zero_over_zero_as_zero() -> None:
    assert smape([100.0, 0.0], [50.0, 0.0]) == pytest.approx(100 / 3)
    assert smape([0.0], [5.0]) == pytest.approx(200.0)


def test_interval_coverage_includes_bounds() -> None:
    y = [1.0, 5.0, 10.0, 3.0]
    assert interval_coverage(y, [0, 0, 0, 3], [2, 4, 10, 4]) == pytest.approx(0.75)


def test_owa() -> None:
    assert owa(2.0, 3.0, 4.0, 6.0) == pytest.approx(0.5)


def _small_panel() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Series A (scale 1.5) and a constant series B (scale 3, its level)."""
    ds_train = pd.date_range("2024-01-07", periods=3, freq="W-SUN")
    ds_test = pd.date_range("2024-01-28", periods=2, freq="W-SUN")
    train = pd.DataFrame(
        {"unique_id": ["A"] * 3 + ["B"] * 3, "ds": [*ds_train] * 2, "y": [1, 2, 4, 3, 3, 3]}
    )
    test = pd.DataFrame(
        {"unique_id": ["A", "A", "B", "B"], "ds": [*ds_test] * 2, "y": [5, 7, 3, 6]}
    )
    forecasts = pd.DataFrame(
        {
            "unique_id": ["A", "A", "B", "B"],
            "ds": [*ds_test] * 2,
            "p10": [4, 4, 2, 2],
            "p50": [5, 5, 3, 3],
            "p90": [6, 6, 4, 4],
        }
    )
    return train, test, forecasts


def test_score_panel_on_hand_computed_panel() -> None:
    train, test, forecasts = _small_panel()
    # Row order must not matter: rows are matched on (unique_id, ds).
    scores = score_panel(
        train.sample(frac=1, random_state=0),
        test.iloc[::-1],
        forecasts.sample(frac=1, random_state=1),
        quantiles=[0.9, 0.1, 0.5],
    )
    assert scores == pytest.approx(
        {
            "smape": (100 / 6 + 100 / 3) / 2,  # A: (0 + 200*2/12)/2, B: (0 + 200*3/9)/2
            "mase": (1 / 1.5 + 1.5 / 3) / 2,
            "wql": 2 * (0.9 + 2.5 + 2.9) / 3 / 21,  # pooled rho per quantile over sum |y|
            "sql": (2 * 0.4 / 1.5 + 2 * 0.65 / 3) / 2,
            "coverage": 0.5,
            "n_series": 2,
        }
    )


def test_score_panel_requires_a_forecast_for_every_test_row() -> None:
    train, test, forecasts = _small_panel()
    with pytest.raises(ValueError, match="cover every test row"):
        score_panel(train, test, forecasts.iloc[1:], quantiles=[0.1, 0.5, 0.9])
    with pytest.raises(ValueError, match="lack columns"):
        score_panel(train, test, forecasts.drop(columns="p90"), quantiles=[0.1, 0.5, 0.9])


def test_scaled_quantile_loss_is_twice_utilsforecast() -> None:
    rng = np.random.default_rng(7)
    quantiles = [0.1, 0.5, 0.9]
    ids = [f"s{i}" for i in range(5)]
    train = pd.DataFrame(
        {
            "unique_id": np.repeat(ids, 20),
            "ds": np.tile(pd.date_range("2024-01-07", periods=20, freq="W-SUN"), 5),
            "y": rng.normal(10, 3, 100).cumsum(),
        }
    )
    test = pd.DataFrame(
        {
            "unique_id": np.repeat(ids, 4),
            "ds": np.tile(pd.date_range("2024-05-26", periods=4, freq="W-SUN"), 5),
            "y": rng.normal(10, 3, 20),
        }
    )
    forecasts = test[["unique_id", "ds"]].copy()
    for q in quantiles:
        forecasts[quantile_label(q)] = 10 + 3 * (q - 0.5) + rng.normal(0, 1, 20)
    frame = test.merge(forecasts, on=["unique_id", "ds"])

    theirs = pd.concat(
        [
            ufl.scaled_quantile_loss(
                frame, models={"model": quantile_label(q)}, seasonality=1, train_df=train, q=q
            ).set_index("unique_id")["model"]
            for q in quantiles
        ],
        axis=1,
    ).mean(axis=1)
    for uid, group in frame.groupby("unique_id"):
        scale = scale_denominator(train.loc[train["unique_id"] == uid, "y"].to_numpy())
        ours = scaled_quantile_loss(
            group["y"].to_numpy(),
            {q: group[quantile_label(q)].to_numpy() for q in quantiles},
            scale,
        )
        assert ours == pytest.approx(2 * theirs[uid])
    scores = score_panel(train, test, forecasts, quantiles)
    assert scores["sql"] == pytest.approx(2 * theirs.mean())


@pytest.fixture(scope="module")
def m4_weekly(shared_data: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    root = shared_data / "m4-weekly"
    return pd.read_parquet(root / "train.parquet"), pd.read_parquet(root / "test.parquet")


@pytest.mark.shared_data
def test_naive2_reference_matches_published_m4_scores(
    shared_data: Path, m4_weekly: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    train, test = m4_weekly
    reference = pd.read_parquet(shared_data / "m4-weekly" / "reference_Naive2.parquet")
    test = test.sort_values(["unique_id", "ds"])
    test["step"] = test.groupby("unique_id").cumcount() + 1
    forecasts = test.merge(reference, on=["unique_id", "step"], validate="one_to_one")
    forecasts = forecasts.rename(columns={"Naive2": "p50"})[["unique_id", "ds", "p50"]]

    scores = score_panel(train, test, forecasts, quantiles=[0.5])

    assert scores["n_series"] == 359
    assert scores["smape"] == pytest.approx(9.161, abs=5e-4)
    assert scores["mase"] == pytest.approx(2.777, abs=5e-4)


@pytest.mark.shared_data
def test_last_value_forecast_matches_chronos_seasonal_naive(
    m4_weekly: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    train, test = m4_weekly
    last = train.sort_values(["unique_id", "ds"]).groupby("unique_id")["y"].last()
    forecasts = test[["unique_id", "ds"]].copy()
    for q in DECILES:
        forecasts[quantile_label(q)] = forecasts["unique_id"].map(last)

    scores = score_panel(train, test, forecasts, quantiles=DECILES)

    assert scores["mase"] == pytest.approx(2.777295, abs=5e-7)
    assert scores["wql"] == pytest.approx(0.063399, abs=5e-7)
