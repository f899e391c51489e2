"""Live points, their reference at the same horizon, and the CUSUM: hand-computed numbers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from forecasting.monitoring import store
from forecasting.monitoring.cusum import CusumRule, false_alarm_rate, run_cusum, weekly_increments
from forecasting.monitoring.judge import judge, since_retrain
from forecasting.monitoring.live import live_points, with_reference
from forecasting.monitoring.reference import RunReference, run_reference

QUANTILES = [0.1, 0.5, 0.9]
ORIGIN = pd.Timestamp("2025-01-05")


def _history(weeks: list[float] | None = None) -> pd.DataFrame:
    # up to the origin: [10, 12, 10, 12] -> scale (mean |diff|) 2, level (mean |y|) 11
    values = [10.0, 12.0, 10.0, 12.0, *(weeks if weeks is not None else [14.0, 20.0])]
    ds = pd.date_range("2024-12-15", periods=len(values), freq="W-SUN")
    return pd.DataFrame({"unique_id": "a", "ds": ds, "y": values})


def _forecast(horizons: int = 3, origin: pd.Timestamp = ORIGIN, run_id: str = "r") -> pd.DataFrame:
    return pd.DataFrame({
        "unique_id": "a", "forecast_origin": origin,
        "ds": pd.date_range(origin, periods=horizons + 1, freq="W-SUN")[1:],
        "horizon": np.arange(1, horizons + 1), "p10": 10.0, "p50": 12.0, "p90": 14.0, "run_id": run_id, "model": "Naive",
    })


def test_each_arrived_step_is_a_point_with_its_own_horizon():
    points = live_points(_forecast(), _history(), QUANTILES)
    # two weeks arrived (14, 20); the third has not
    assert list(points["horizon"]) == [1, 2]
    # y=14: pinball q.1 0.4, q.5 1.0, q.9 0.0 -> mean 0.4667, x2 / scale 2 = 0.4667
    # y=20: q.1 1.0, q.5 4.0, q.9 5.4 -> mean 3.4667 -> 3.4667
    np.testing.assert_allclose(points["loss"], [1.4 / 3, 10.4 / 3])
    assert list(points["inside"]) == [True, False]
    np.testing.assert_allclose(points["level_in_scale"], 11.0 / 2.0)


def test_a_missing_week_keeps_the_other_horizons_aligned():
    history = _history([14.0, 20.0, 16.0, 18.0]).drop(index=4)  # week 1 after the origin never arrived
    points = live_points(_forecast(4), history, QUANTILES)
    assert list(points["horizon"]) == [2, 3, 4]
    reference = RunReference("r", pd.Series({"a": 1.0}), {1: 0.5, 2: 1.0, 3: 1.25, 4: 1.25})
    judged = with_reference(points, {"r": reference}, floor=0.0)
    np.testing.assert_allclose(judged["reference"], [1.0, 1.25, 1.25])  # the factors of horizons 2, 3, 4


def test_the_reference_of_a_run_by_hand():
    cutoffs = [pd.Timestamp("2024-12-22"), pd.Timestamp("2024-12-29")]  # scales: [10, 12] -> 2; [10, 12, 10] -> 2
    rows = []
    for cutoff, errors in zip(cutoffs, ([0.0, 2.0], [2.0, 4.0]), strict=True):
        ds = pd.date_range(cutoff, periods=3, freq="W-SUN")[1:]
        truth = _history().set_index("ds").loc[ds, "y"].to_numpy()
        for candidate, shift in (("Naive", errors), ("Other", [50.0, 50.0])):
            point = truth - np.asarray(shift)
            rows.append(pd.DataFrame({"unique_id": "a", "candidate": candidate, "cutoff": cutoff, "ds": ds, "y": truth,
                                      "p10": point, "p50": point, "p90": point}))
    reference = run_reference("r", pd.concat(rows), pd.Series({"a": "Naive"}), _history(), QUANTILES)
    # point loss of an error e with every quantile at the same value: mean(2 rho_q) = e, / scale 2 = e / 2
    # window 1: 0, 1; window 2: 1, 2 -> level 1.0; horizon means 0.5 and 1.5 -> profile 0.5, 1.5
    assert reference.levels["a"] == pytest.approx(1.0)
    assert reference.profile == pytest.approx({1: 0.5, 2: 1.5})
    assert reference.factor(7) == pytest.approx(1.5)  # beyond the backtest's horizons: the last factor


def test_new_series_take_the_runs_pooled_level_and_small_errors_are_not_material():
    points = pd.DataFrame({"unique_id": ["a", "new"], "run_id": "r", "horizon": 1, "level_in_scale": [50.0, 50.0]})
    reference = RunReference("r", pd.Series({"a": 0.2}), {1: 1.0}, pooled_level=0.8)
    judged = with_reference(points, {"r": reference}, floor=0.1)
    assert list(judged["pooled"]) == [False, True]
    np.testing.assert_allclose(judged["reference"], [0.2, 0.8])
    # an error of 10 % of the level (loss 0.1 x 50 = 5) is needed before a point counts as worse
    np.testing.assert_allclose(with_reference(points, {"r": reference}, 0.1, materiality=0.1)["reference"], [5.0, 5.0])
    unknown = with_reference(points.assign(run_id="gone"), {}, 0.1)
    assert unknown["reference"].isna().all()


def _points(rows: list[tuple[str, str, str, float, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["unique_id", "forecast_origin", "ds", "loss", "reference"])
    return frame.assign(forecast_origin=pd.to_datetime(frame["forecast_origin"]), ds=pd.to_datetime(frame["ds"]),
                        inside=True, pooled=False)


def test_cusum_by_hand_with_a_missing_week():
    rule = CusumRule(drift=0.5, threshold=2.0)
    e = math.e
    points = _points([
        ("a", "2025-01-05", "2025-01-12", e, 1.0),  # log ratio 1
        ("a", "2025-01-05", "2025-01-19", e**2, 1.0),  # two origins of one week: mean of 2 and 0 = 1
        ("a", "2025-01-12", "2025-01-19", 1.0, 1.0),
        # 2025-01-26: no actual -> nothing added, nothing lost
        ("a", "2025-01-12", "2025-02-02", e**5, 1.0),  # clipped at 3
        ("b", "2025-01-05", "2025-01-12", 0.001, 1.0),  # better than the reference: counts as 0, the statistic stays 0
    ])
    increments = weekly_increments(points, rule)
    assert increments.loc[increments["unique_id"] == "a", "x"].tolist() == pytest.approx([1.0, 1.0, 3.0])
    state = run_cusum(increments, rule).set_index("unique_id")
    # a: 0.5, 1.0, 3.5 -> alarm on 2025-02-02; b: 0
    assert state.loc["a", "statistic"] == pytest.approx(3.5) and state.loc["a", "alarm_week"] == pd.Timestamp("2025-02-02")
    assert state.loc["b", "statistic"] == 0.0 and pd.isna(state.loc["b", "alarm_week"])
    judged = judge(points, rule).set_index("unique_id")
    assert judged.loc["a", "degraded"] and not judged.loc["b", "degraded"]
    assert judged.loc["a", "weeks"] == 3 and judged.loc["a", "points"] == 4
    # after a retrain on 2025-01-12 only the forecasts published from then on count: 0, 3 -> 2.5
    fresh = judge(since_retrain(points, {"a": pd.Timestamp("2025-01-12")}), rule).set_index("unique_id")
    assert fresh.loc["a", "statistic"] == pytest.approx(2.5) and fresh.loc["a", "points"] == 2


def test_the_false_alarm_rate_of_a_rule_under_a_null():
    rule = CusumRule(drift=0.5, threshold=2.0)
    assert false_alarm_rate(np.array([0.0, 0.4]), rule, weeks=13) == 0.0  # never above the drift
    assert false_alarm_rate(np.array([1.5]), rule, weeks=2) == 1.0  # 1, 2: alarm in week 2
    assert false_alarm_rate(np.array([1.5]), rule, weeks=1) == 0.0
    assert 0.0 < false_alarm_rate(np.array([-1.0, 2.0]), rule, weeks=13) < 1.0


def test_references_outlive_their_run_and_an_old_table_is_kept_aside(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    with engine.begin() as connection:  # the previous schema of the evaluations table
        connection.execute(sa.text("CREATE TABLE monitoring_evaluations (evaluation_date TIMESTAMP, consecutive INTEGER)"))
    store.ensure_tables(engine)
    assert sa.inspect(engine).has_table("monitoring_evaluations_legacy")
    assert "statistic" in {c["name"] for c in sa.inspect(engine).get_columns("monitoring_evaluations")}
    reference = RunReference("r1", pd.Series({"a": 0.7, "b": 1.2}), {1: 0.8, 2: 1.2}, 0.95)
    store.save_reference(engine, reference)
    store.save_reference(engine, reference)  # idempotent
    loaded = store.load_references(engine, ["r1", "absent"])
    assert set(loaded) == {"r1"} and store.stored_runs(engine) == {"r1"}
    pd.testing.assert_series_equal(loaded["r1"].levels.sort_index(), reference.levels, check_names=False)
    assert loaded["r1"].profile == reference.profile and loaded["r1"].pooled_level == 0.95
