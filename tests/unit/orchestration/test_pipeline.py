"""The weekly job end to end on the demo panel (config/test.yaml), shards run in this process.

One run is shared by the module; the tests that need other runs use their own output roots.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from forecasting.config import ConfigError, Settings, load_settings
from forecasting.config.loader import deep_merge
from forecasting.data.contract import (
    PUBLISHED_STATUSES,
    STATUS_ENDED,
    STATUS_NEW,
    STATUS_QUARANTINED,
)
from forecasting.data.validation import CircuitBreakerError, DataSchemaError
from forecasting.orchestration.local import run_weekly
from forecasting.orchestration.run_input import load_input
from forecasting.orchestration.steps.prepare import create_run_folder
from forecasting.orchestration.steps.train_shard import train_shard_task

pytestmark = pytest.mark.slow

TEST_CONFIG = Path(__file__).resolve().parents[3] / "config" / "test.yaml"
CONTRACT_COLUMNS = [
    "unique_id",
    "forecast_origin",
    "ds",
    "horizon",
    "p10",
    "p50",
    "p90",
    "model",
    "status",
    "run_id",
    "model_version",
    "schema_version",
]
QUANTILE_COLUMNS = ["p10", "p50", "p90"]


def _settings(root: Path, **sections: dict[str, Any]) -> Settings:
    overrides = {"output": {"root": str(root)}, "compute": {"executor": "serial", "progress": False}}
    return load_settings(TEST_CONFIG, deep_merge(overrides, sections))


@dataclass
class Run:
    settings: Settings
    summary: dict[str, Any]
    panel: pd.DataFrame
    forecasts: pd.DataFrame
    ledger: pd.DataFrame
    published: pd.DataFrame  # the origin's table right after this run


def _run(settings: Settings, panel: pd.DataFrame, series: list[str] | None = None) -> Run:
    summary = run_weekly(settings, series)
    return Run(
        settings=settings,
        summary=summary,
        panel=panel,
        forecasts=pd.read_parquet(summary["forecasts"]),
        ledger=pd.read_parquet(summary["ledger"]),
        published=pd.read_parquet(summary["published"]),
    )


@pytest.fixture(scope="module")
def weekly(tmp_path_factory: pytest.TempPathFactory) -> Run:
    settings = _settings(tmp_path_factory.mktemp("weekly"))
    panel, _ = load_input(settings)
    return _run(settings, panel)


def _assert_contract(table: pd.DataFrame, origin: pd.Timestamp, settings: Settings, history: pd.DataFrame) -> None:
    """Every rule of the published table (docs/architecture.md, "The published table") on ``table``."""
    horizon = settings.forecast.horizon
    assert list(table.columns) == CONTRACT_COLUMNS
    assert pd.api.types.is_datetime64_any_dtype(table["forecast_origin"])
    assert pd.api.types.is_datetime64_any_dtype(table["ds"])
    assert (table["forecast_origin"] == origin).all()
    assert not table.duplicated(["unique_id", "forecast_origin", "ds"]).any()

    per_series = table.groupby("unique_id")["horizon"].agg(list)
    assert all(h == list(range(1, horizon + 1)) for h in per_series)
    step = pd.tseries.frequencies.to_offset(settings.forecast.freq)
    expected_ds = [origin + int(h) * step for h in table["horizon"]]
    assert (table["ds"].to_numpy() == pd.DatetimeIndex(expected_ds).to_numpy()).all()

    quantiles = table[QUANTILE_COLUMNS].to_numpy()
    assert np.isfinite(quantiles).all()
    assert (np.diff(quantiles, axis=1) >= 0).all()
    non_negative = history.groupby("unique_id")["y"].min().ge(0)
    rows_non_negative = table["unique_id"].map(non_negative).fillna(False).to_numpy(dtype=bool)
    assert (quantiles[rows_non_negative] >= 0).all()

    assert set(table["status"]) <= set(PUBLISHED_STATUSES)
    assert (table["model"] != "").all()
    assert (table["model_version"] == "").all()
    assert (table["schema_version"] == 1).all()


# --------------------------------------------------------------------------- the contract


def test_published_rows_follow_the_contract(weekly: Run):
    origin = pd.Timestamp(weekly.summary["as_of"])
    assert origin == weekly.panel["ds"].max()
    _assert_contract(weekly.forecasts, origin, weekly.settings, weekly.panel)
    assert (weekly.forecasts["run_id"] == weekly.summary["run_id"]).all()
    assert weekly.summary["run_id"].startswith(f"{origin:%Y%m%d}-")
    # the published origin table is exactly this run's rows
    pd.testing.assert_frame_equal(weekly.published, weekly.forecasts)
    assert Path(weekly.summary["published"]).name == f"origin={origin:%Y-%m-%d}.parquet"


def test_every_input_series_is_in_the_ledger_once_and_ended_ones_are_not_published(weekly: Run):
    ledger = weekly.ledger
    assert sorted(ledger["unique_id"]) == sorted(weekly.panel["unique_id"].unique())
    assert not ledger["unique_id"].duplicated().any()
    assert ledger["status"].isin([*PUBLISHED_STATUSES, STATUS_ENDED, STATUS_QUARANTINED]).all()
    assert weekly.summary["counts"] == ledger["status"].value_counts().to_dict()
    assert {"ok", "new", "ended"} <= set(ledger["status"])  # the demo panel has all three

    published = set(weekly.forecasts["unique_id"])
    assert published == set(ledger.loc[ledger["status"].isin(PUBLISHED_STATUSES), "unique_id"])
    assert not published & set(ledger.loc[ledger["status"] == STATUS_ENDED, "unique_id"])
    # model and status of every row are the ledger's
    rows = weekly.forecasts.drop_duplicates("unique_id").set_index("unique_id")[["model", "status"]]
    pd.testing.assert_frame_equal(rows, ledger.set_index("unique_id").loc[rows.index, ["model", "status"]])


def test_leaderboard_flags_the_ledger_winner(weekly: Run):
    board = pd.read_parquet(weekly.summary["leaderboard"])
    winners = board[board["is_winner"]].set_index("unique_id")["candidate"]
    assert not winners.index.duplicated().any()
    chosen = weekly.ledger[weekly.ledger["winner"] != ""].set_index("unique_id")["winner"]
    scored = set(zip(board["unique_id"], board["candidate"], strict=True))
    backtested = chosen[[(uid, winner) in scored for uid, winner in chosen.items()]]
    pd.testing.assert_series_equal(winners.sort_index(), backtested.sort_index(), check_names=False)
    # a choice without a backtest score is the pool's ensemble of a series with no window
    unscored = weekly.ledger.set_index("unique_id").loc[chosen.index.difference(backtested.index)]
    assert len(unscored) and (unscored["status"] == STATUS_NEW).all() and (unscored["winner"] == "Ensemble").all()
    assert (board.groupby("unique_id")["rank"].min() == 1).all()


# --------------------------------------------------------------------------- reruns


def test_shard_checkpoints_are_reused(weekly: Run):
    run_dir = weekly.summary["run_dir"]
    shards = sorted(int(p.name.split("-")[1]) for p in (Path(run_dir) / "shards").iterdir())
    assert len(shards) == weekly.settings.compute.n_shards
    results = [train_shard_task(run_dir, shard) for shard in shards]
    assert all(r["skipped"] for r in results)
    assert sum(r["n_series"] for r in results) == len(weekly.ledger)


def test_rerun_is_idempotent(weekly: Run):
    again = _run(weekly.settings, weekly.panel)
    assert again.summary["run_id"] == weekly.summary["run_id"]
    assert again.summary["published"] == weekly.summary["published"]
    pd.testing.assert_frame_equal(again.forecasts, weekly.forecasts)
    pd.testing.assert_frame_equal(again.published, weekly.published)
    assert not again.published.duplicated(["unique_id", "forecast_origin", "ds"]).any()


def test_same_work_elsewhere_gives_the_same_rows_whatever_the_batch_size(weekly: Run, tmp_path: Path):
    two = _run(_settings(tmp_path, compute={"series_per_batch": 2}), weekly.panel)
    assert two.summary["run_id"] == weekly.summary["run_id"]  # where and how are not part of the run id
    pd.testing.assert_frame_equal(two.forecasts, weekly.forecasts)
    # the same run folder with other batches: their checkpoints must not be reused
    seven = _run(_settings(tmp_path, compute={"series_per_batch": 7}), weekly.panel)
    assert seven.summary["run_id"] == weekly.summary["run_id"]
    assert sorted(seven.ledger["unique_id"]) == sorted(weekly.ledger["unique_id"])
    pd.testing.assert_frame_equal(seven.forecasts, weekly.forecasts)
    pd.testing.assert_frame_equal(seven.published, weekly.forecasts)


def test_the_shard_layout_is_part_of_the_work(weekly: Run, tmp_path: Path):
    """A shard's series are the pools calibration and the ensemble learn from: other shards, other work."""
    five = create_run_folder(_settings(tmp_path, compute={"n_shards": 5}))
    assert five["run_id"] != weekly.summary["run_id"] and five["shards"] == [0, 1, 2, 3, 4]
    by_size = create_run_folder(_settings(tmp_path, compute={"n_shards": None, "series_per_shard": 10}))
    assert by_size["run_id"] not in (weekly.summary["run_id"], five["run_id"])
    assert len(by_size["shards"]) == 4  # 40 series, 10 per shard


def test_subset_run_replaces_only_its_series_rows(weekly: Run):
    ok = weekly.ledger.loc[weekly.ledger["status"] == "ok", "unique_id"].tolist()
    subset = [ok[0], ok[-1]]
    before = pd.read_parquet(weekly.summary["published"])
    part = _run(weekly.settings, weekly.panel, subset)

    assert part.summary["run_id"] != weekly.summary["run_id"]
    assert part.summary["as_of"] == weekly.summary["as_of"]
    assert part.summary["published"] == weekly.summary["published"]
    assert sorted(part.ledger["unique_id"]) == sorted(subset)
    assert set(part.forecasts["unique_id"]) == set(subset)

    after = part.published
    assert len(after) == len(before)
    assert not after.duplicated(["unique_id", "forecast_origin", "ds"]).any()
    mine = after["unique_id"].isin(subset)
    assert (after.loc[mine, "run_id"] == part.summary["run_id"]).all()
    pd.testing.assert_frame_equal(
        after[~mine].reset_index(drop=True), before[~before["unique_id"].isin(subset)].reset_index(drop=True)
    )
    pd.testing.assert_frame_equal(
        after[mine].drop(columns="run_id").reset_index(drop=True),
        part.forecasts.drop(columns="run_id").reset_index(drop=True),
    )


def test_subset_run_of_an_ended_series_publishes_nothing_and_removes_its_stale_rows(weekly: Run):
    ended = weekly.ledger.loc[weekly.ledger["status"] == STATUS_ENDED, "unique_id"].iloc[0]
    path = Path(weekly.summary["published"])
    before = pd.read_parquet(path)
    # an earlier run of this origin had published the series (for example before it ended)
    stale = before[before["unique_id"] == before["unique_id"].iloc[0]].assign(unique_id=ended, run_id="stale")
    pd.concat([before, stale], ignore_index=True).to_parquet(path, index=False)

    part = run_weekly(weekly.settings, [ended])
    assert part["counts"] == {STATUS_ENDED: 1}
    assert part["as_of"] == weekly.summary["as_of"]  # the origin of the full input, not of this series
    empty = pd.read_parquet(part["forecasts"])
    assert list(empty.columns) == CONTRACT_COLUMNS and empty.empty
    after = pd.read_parquet(path)
    assert ended not in set(after["unique_id"])
    pd.testing.assert_frame_equal(after, before)


def test_subset_of_unknown_series_is_a_clear_error(weekly: Run):
    with pytest.raises(ConfigError, match="none of the 1 requested series"):
        run_weekly(weekly.settings, ["NO-SUCH-SERIES"])


# --------------------------------------------------------------------------- bad input


def _poison(panel: pd.DataFrame, ids: list[str]) -> pd.DataFrame:
    """Duplicated date, NaN, a late off-grid date, a single row: one series each."""
    duplicate, nan, off_grid, single = ids
    frame = panel.copy()
    frame = pd.concat([frame, frame[frame["unique_id"] == duplicate].iloc[[5]]], ignore_index=True)
    frame.loc[frame[frame["unique_id"] == nan].index[7], "y"] = np.nan
    wednesday = frame["ds"].max() + pd.Timedelta(days=3)  # after the last Sunday: it also sets as_of
    frame = pd.concat(
        [frame, pd.DataFrame({"unique_id": [off_grid], "ds": [wednesday], "y": [3.0]})], ignore_index=True
    )
    frame = frame[(frame["unique_id"] != single) | (frame.index == frame[frame["unique_id"] == single].index[-1])]
    return frame.sample(frac=1.0, random_state=3).reset_index(drop=True)


def test_poisoned_series_are_quarantined_and_the_healthy_ones_forecast(weekly: Run, tmp_path: Path):
    ids = sorted(weekly.panel["unique_id"].unique())
    poisoned = {ids[1]: "duplicate_timestamps", ids[3]: "non_finite_values", ids[5]: "irregular_frequency",
                ids[8]: "too_short"}
    path = tmp_path / "poisoned.parquet"
    _poison(weekly.panel, list(poisoned)).to_parquet(path, index=False)

    run = _run(_settings(tmp_path / "out", data={"path": str(path)}), weekly.panel)

    ledger = run.ledger.set_index("unique_id")
    assert len(ledger) == len(ids)
    quarantined = ledger[ledger["status"] == STATUS_QUARANTINED]
    assert quarantined["reason"].to_dict() == poisoned
    assert (quarantined["detail"] != "").all()
    # every healthy series ends as it did on the clean panel; the published ones get forecasts
    healthy = [i for i in ids if i not in poisoned]
    pd.testing.assert_series_equal(ledger.loc[healthy, "status"], weekly.ledger.set_index("unique_id").loc[healthy, "status"])
    expected = set(ledger.index[ledger["status"].isin(PUBLISHED_STATUSES)])
    assert set(run.forecasts["unique_id"]) == expected
    # the late off-grid row set as_of to a Wednesday; the origin stays on the W-SUN grid
    origin = weekly.panel["ds"].max()
    assert pd.Timestamp(run.summary["as_of"]) == origin
    _assert_contract(run.forecasts, origin, run.settings, weekly.panel)
    # the quarantined series leave no trace: the healthy ones are forecast exactly as by a run on the
    # clean panel without them (their shards pool the same series)
    without = _run(_settings(tmp_path / "without"), weekly.panel, healthy)
    pd.testing.assert_frame_equal(
        run.forecasts.drop(columns="run_id").reset_index(drop=True),
        without.forecasts.drop(columns="run_id").reset_index(drop=True),
    )


def test_circuit_breaker_fails_the_run_and_publishes_nothing(weekly: Run, tmp_path: Path):
    ids = sorted(weekly.panel["unique_id"].unique())
    share = weekly.settings.validation.max_quarantine_share
    bad = ids[: int(len(ids) * share) + 1]  # just over the limit
    frame = weekly.panel.copy()
    frame.loc[frame["unique_id"].isin(bad), "y"] = np.nan
    path = tmp_path / "mostly-broken.parquet"
    frame.to_parquet(path, index=False)
    root = tmp_path / "out"

    with pytest.raises(CircuitBreakerError, match="non_finite_values"):
        run_weekly(_settings(root, data={"path": str(path)}))
    assert not (root / "forecasts").exists()
    assert not (root / "runs").exists() or not any((root / "runs").iterdir())


def test_everything_quarantined_with_the_breaker_off_completes_without_forecasts(weekly: Run, tmp_path: Path):
    frame = weekly.panel.assign(y=np.nan)
    path = tmp_path / "all-nan.parquet"
    frame.to_parquet(path, index=False)
    settings = _settings(tmp_path / "out", data={"path": str(path)}, validation={"max_quarantine_share": 1.0})
    summary = run_weekly(settings)
    assert summary["counts"] == {STATUS_QUARANTINED: weekly.panel["unique_id"].nunique()}
    assert pd.read_parquet(summary["forecasts"]).empty
    assert summary["rows"] == 0


def test_as_of_before_every_row_is_a_data_error(weekly: Run, tmp_path: Path):
    with pytest.raises(DataSchemaError, match="no series has data at or before as_of 2000-01-02"):
        run_weekly(_settings(tmp_path, forecast={"as_of": "2000-01-02"}))
