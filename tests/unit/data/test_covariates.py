"""Covariates: group keys from ids, past-only columns shifted by the horizon, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecasting.data.covariates import CovariateError, CovariateSpec, load_covariates

H = 3


def _files(tmp_path: Path) -> tuple[Path, Path]:
    dates = pd.date_range("2024-01-05", periods=10, freq="W-FRI")
    dynamic = pd.DataFrame({
        "Store": np.repeat([1, 2], 10),
        "Date": np.tile(dates.strftime("%Y-%m-%d"), 2),
        "promo": np.tile([0, 1] * 5, 2),
        "temp": np.arange(20, dtype=float),
    })
    static = pd.DataFrame({"Store": [1, 2], "Type": ["A", "B"], "Size": [100, 200]})
    dynamic.to_csv(tmp_path / "features.csv", index=False)
    static.to_csv(tmp_path / "stores.csv", index=False)
    return tmp_path / "features.csv", tmp_path / "stores.csv"


def _spec(tmp_path: Path, **changes: object) -> CovariateSpec:
    features, stores = _files(tmp_path)
    base = dict(path=features, time_col="Date", keys=("Store",), id_pattern=r"^(?P<Store>\d+)_",
                known_in_advance=("promo",), past_only=("temp",), static_path=stores, static=("Type", "Size"))
    return CovariateSpec(**{**base, **changes})  # type: ignore[arg-type]


def test_group_covariates_reach_every_series_of_the_group_and_past_only_values_are_shifted(tmp_path: Path):
    covariates = load_covariates(_spec(tmp_path), ["1_7", "2_3"], "W-FRI", H)
    assert covariates is not None and covariates.dynamic is not None and covariates.static is not None
    store1 = covariates.dynamic[covariates.dynamic["unique_id"] == "1_7"].reset_index(drop=True)
    assert len(store1) == 10 + H  # the past-only values shifted past the file's end are still observed ones
    assert store1["promo"].iloc[:10].tolist() == [0, 1] * 5 and store1["promo"].iloc[10:].isna().all()
    assert store1["temp"].iloc[:H].isna().all()
    assert store1["temp"].iloc[H:].tolist() == list(np.arange(10, dtype=float))  # value at t is the one at t - H
    assert covariates.static.set_index("unique_id").loc["2_3", "Size"] == 200
    assert covariates.static["Type"].tolist() == [0.0, 1.0]


def test_no_covariates_configured_gives_none():
    assert load_covariates(CovariateSpec(), ["a"], "W-FRI", H) is None


@pytest.mark.parametrize(
    ("changes", "ids", "message"),
    [
        ({"id_pattern": None}, ["1_7"], "need id_pattern"),
        ({}, ["x7"], "do not match id_pattern"),
        ({"known_in_advance": ("temp",)}, ["1_7"], "both known_in_advance and past_only"),
        ({"past_only": ("nope",)}, ["1_7"], "has no columns ['nope']"),
    ],
)
def test_bad_covariate_input_is_a_clear_error(tmp_path: Path, changes: dict, ids: list[str], message: str):
    with pytest.raises(CovariateError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_covariates(_spec(tmp_path, **changes), ids, "W-FRI", H)
