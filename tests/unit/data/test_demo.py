"""The synthetic demo panel: deterministic, on the data contract, and a realistic mix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting.data.demo import KINDS, generate_demo_panel

END = pd.Timestamp("2025-12-28")


@pytest.fixture(scope="module")
def demo() -> tuple[pd.DataFrame, pd.DataFrame]:
    return generate_demo_panel(return_kinds=True)


@pytest.fixture(scope="module")
def stats(demo: tuple[pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:
    panel, kinds = demo
    g = panel.groupby("unique_id")
    out = pd.DataFrame(
        {
            "n": g.size(),
            "nonzero": g["y"].apply(lambda s: int((s > 0).sum())),
            "first": g["ds"].min(),
            "last": g["ds"].max(),
        }
    )
    return out.join(kinds.set_index("unique_id")["kind"])


def test_same_seed_same_frame_and_different_seed_different() -> None:
    a = generate_demo_panel(n_series=40, n_periods=60, seed=3)
    b = generate_demo_panel(n_series=40, n_periods=60, seed=3)
    c = generate_demo_panel(n_series=40, n_periods=60, seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


def test_schema(demo: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    panel, kinds = demo
    assert list(panel.columns) == ["unique_id", "ds", "y"]
    assert panel["ds"].dtype == np.dtype("datetime64[ns]")
    assert panel["y"].dtype == np.float64
    assert panel["unique_id"].map(type).eq(str).all()
    assert panel["unique_id"].str.fullmatch(r"SKU-\d{4}").all()
    assert not panel.duplicated(["unique_id", "ds"]).any()
    assert np.isfinite(panel["y"]).all()
    assert (panel["y"] >= 0).all()
    assert list(kinds.columns) == ["unique_id", "kind"]
    assert kinds["unique_id"].is_unique
    assert set(kinds["unique_id"]) == set(panel["unique_id"])
    assert set(kinds["kind"]) <= set(KINDS)


def test_regular_weekly_grid_ending_at_end(stats: pd.DataFrame) -> None:
    grid = pd.date_range(end=END, periods=156, freq="W-SUN")
    assert (stats["first"] >= grid[0]).all()
    # Regular grid with no gaps: the row count spans first..last exactly.
    steps = (stats["last"] - stats["first"]) / pd.Timedelta(weeks=1) + 1
    assert (steps == stats["n"]).all()
    ongoing = stats[stats["kind"] != "discontinued"]
    assert (ongoing["last"] == END).all()


def test_every_kind_present(stats: pd.DataFrame) -> None:
    counts = stats["kind"].value_counts()
    assert set(counts.index) == set(KINDS)
    assert counts.sum() == 300
    assert counts[["smooth", "seasonal"]].sum() / 300 == pytest.approx(0.55, abs=0.05)


def test_intermittent_has_adi_above_threshold(stats: pd.DataFrame) -> None:
    inter = stats[stats["kind"] == "intermittent"]
    assert (inter["nonzero"] > 0).all()
    assert (inter["n"] / inter["nonzero"] > 1.32).all()
    smooth = stats[stats["kind"].isin(["smooth", "seasonal"])]
    assert (smooth["n"] / smooth["nonzero"]).median() < 1.1


def test_new_items_are_short(stats: pd.DataFrame) -> None:
    new = stats[stats["kind"] == "new"]
    assert new["n"].between(8, 60).all()
    assert (new["last"] == END).all()
    full = stats[stats["kind"].isin(["smooth", "seasonal", "intermittent", "level_shift"])]
    assert (full["n"] == 156).all()


def test_discontinued_items_stop_early(stats: pd.DataFrame) -> None:
    ended = stats[stats["kind"] == "discontinued"]
    assert (ended["last"] <= END - pd.Timedelta(weeks=30)).all()


def test_level_shift_changes_the_last_year(demo: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    panel, kinds = demo
    ids = kinds.loc[kinds["kind"] == "level_shift", "unique_id"]
    y = panel[panel["unique_id"].isin(ids)].pivot(index="ds", columns="unique_id", values="y")
    ratio = y.iloc[-4:].mean() / y.iloc[:-52].mean()
    # Most breaks move the level by far more than noise would (x0.35-0.7 or x1.5-2.5).
    assert ((ratio < 0.8) | (ratio > 1.3)).mean() > 0.6


def test_monthly_frequency() -> None:
    panel, kinds = generate_demo_panel(n_series=60, n_periods=72, freq="MS", return_kinds=True)
    last = pd.Timestamp("2025-12-01")  # the default end rolled back onto the MS grid
    assert panel["ds"].dtype == np.dtype("datetime64[ns]")
    assert (panel["ds"].dt.day == 1).all()
    assert not panel.duplicated(["unique_id", "ds"]).any()
    assert (panel["y"] >= 0).all()
    assert set(kinds["kind"]) == set(KINDS)
    g = panel.groupby("unique_id")["ds"]
    months = (g.max().dt.year - g.min().dt.year) * 12 + g.max().dt.month - g.min().dt.month + 1
    assert (months == g.size()).all()
    ongoing = kinds.loc[kinds["kind"] != "discontinued", "unique_id"]
    assert (g.max()[ongoing] == last).all()
    panel_end = generate_demo_panel(n_series=10, n_periods=24, freq="MS", end="2024-06-01")
    assert panel_end["ds"].max() == pd.Timestamp("2024-06-01")


def test_rejects_too_short_panel() -> None:
    with pytest.raises(ValueError, match="n_periods"):
        generate_demo_panel(n_periods=5)


def test_three_thousand_series_have_unique_ids() -> None:
    panel = generate_demo_panel(n_series=3000)
    assert panel["unique_id"].nunique() == 3000
