"""Batch size from the candidates' cost: about two seconds of work per Dask task."""

from __future__ import annotations

from forecasting.config import load_settings
from forecasting.orchestration.batching import (
    CHILD_START_SECONDS,
    MAX_START_SHARE,
    series_per_batch,
)
from forecasting.training.plan import TrainingPlan


def _plan(names: list[str], **plugins) -> TrainingPlan:
    settings = load_settings(overrides={"models": {"candidates": [{"name": n} for n in names]},
                                        "compute": {"executor": "serial", "progress": False}, **plugins})
    return TrainingPlan.from_settings(settings)


def test_the_default_candidates_get_a_few_series_per_task() -> None:
    plan = TrainingPlan.from_settings(load_settings(overrides={"compute": {"progress": False}}))
    assert 3 <= series_per_batch(plan, 250) <= 10


def test_cheap_candidates_take_the_whole_shard_in_one_task() -> None:
    assert series_per_batch(_plan(["Naive", "SeasonalNaive"]), 250) == 250
    assert series_per_batch(_plan(["Naive", "SeasonalNaive"]), 3) == 3


def test_more_expensive_candidates_mean_smaller_batches() -> None:
    assert series_per_batch(_plan(["AutoETS", "AutoTheta", "AutoCES"]), 250) < series_per_batch(_plan(["AutoETS"]), 250)


def test_an_isolated_plug_in_gets_batches_that_amortise_its_child_start() -> None:
    plan = _plan(["SeasonalMovingAverage"])
    size = series_per_batch(plan, 10_000)
    seconds_per_batch = size * 0.05 + CHILD_START_SECONDS
    assert CHILD_START_SECONDS / seconds_per_batch <= MAX_START_SHARE + 1e-9


def test_a_configured_size_wins() -> None:
    assert series_per_batch(_plan(["Naive"]), 250, configured=7) == 7
