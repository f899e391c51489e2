"""Per-series training: backtest, selection, refit, quality gate and the fallback chain.

The plans are built by hand from tiny scripted models, so each failure mode is exact:
a model that raises, hangs past the time limit, returns NaN or explodes, for one
series (by its level) or at one history length (the refit on the full history).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

from forecasting.data.contract import (
    STATUS_ENDED,
    STATUS_FALLBACK,
    STATUS_NEW,
    STATUS_OK,
    STATUS_QUARANTINED,
)
from forecasting.evaluation.selection import ENSEMBLE_LABEL
from forecasting.models.base import Forecast, ForecastModel
from forecasting.models.catalog import build_model
from forecasting.training.batch import train_batch
from forecasting.training.plan import Candidate, TrainingPlan
from forecasting.training.series import train_series
from forecasting.training.time_limit import FitTimeoutError, time_limit

H = 4
N = 48  # backtest windows train on 40 and 44 observations; the refit sees all 48
QUANTILES = (0.1, 0.5, 0.9)
SAFETY_SECONDS = 20.0  # a hanging model gives up on its own after this (a broken limit fails, never hangs)


def _busy(seconds: float) -> None:
    """Spin in Python bytecode (where the asynchronous timeout lands) for ``seconds``."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


class Scripted(ForecastModel):
    """Forecasts ``truth[t] + bias[t % len(bias)]`` for the absolute periods t it is asked for.

    Without ``truth`` (or beyond it) the base is the last observed value. ``misbehave``
    ("raise", "hang", "nan", "explode") happens only for a history of length
    ``when_length`` and / or a series whose first value is ``when_level`` (always when both
    are None). Quantiles are ``point + width * (q - 0.5)``: native, monotone.
    """

    tags = {"native_quantiles": True, "demand_types": ("smooth", "intermittent"), "min_history": 1}

    def __init__(
        self,
        truth: Sequence[float] = (),
        bias: Sequence[float] = (0.0,),
        width: float = 2.0,
        misbehave: str = "",
        when_length: int | None = None,
        when_level: float | None = None,
    ) -> None:
        self.truth = truth
        self.bias = bias
        self.width = width
        self.misbehave = misbehave
        self.when_length = when_length
        self.when_level = when_level

    def _triggered(self, y: np.ndarray) -> bool:
        by_length = self.when_length is None or y.size == self.when_length
        by_level = self.when_level is None or y[0] == self.when_level
        return bool(self.misbehave) and by_length and by_level

    def _fit(self, y: np.ndarray, X: np.ndarray | None) -> None:
        self.trigger_ = self._triggered(y)
        if self.trigger_ and self.misbehave == "raise":
            raise RuntimeError(f"scripted failure on {y.size} observations starting at {y[0]:g}")
        if self.trigger_ and self.misbehave == "hang":
            _busy(SAFETY_SECONDS)
        self.last_ = float(y[-1])

    def _predict(self, h: int, quantiles: tuple[float, ...], X_future: np.ndarray | None) -> Forecast:
        steps = np.arange(self.n_obs_, self.n_obs_ + h)
        truth = np.asarray(self.truth, dtype=np.float64)
        base = truth[steps] if truth.size >= self.n_obs_ + h else np.full(h, self.last_)
        point = base + np.asarray(self.bias, dtype=np.float64)[steps % len(self.bias)]
        if self.trigger_ and self.misbehave == "nan":
            point = np.full(h, np.nan)
        if self.trigger_ and self.misbehave == "explode":
            point = np.full(h, 1e12)
        return Forecast(point=point, quantiles={q: point + self.width * (q - 0.5) for q in quantiles})


def _series(level: float = 100.0, n: int = N) -> np.ndarray:
    t = np.arange(n, dtype=np.float64)
    return level + 10.0 * np.sin(t / 3.0) + 0.5 * t


Y = _series()
TRUTH = tuple(Y)
DS = pd.date_range("2024-01-07", periods=N, freq="W-SUN").to_numpy()


def _plan(
    candidates: Sequence[tuple[str, ForecastModel]],
    fallbacks: Sequence[tuple[str, ForecastModel]] = (),
    *,
    fit_time_limit: float = 30.0,
    ensemble_top_k: int = 0,
) -> TrainingPlan:
    return TrainingPlan(
        horizon=H,
        quantiles=QUANTILES,
        season_length=1,
        n_windows=2,
        step=H,
        history_cap=1000,
        fit_time_limit=fit_time_limit,
        conformal_windows=2,
        ensemble_top_k=ensemble_top_k,
        explosion_factor=10.0,
        candidates=tuple(Candidate(label, model) for label, model in candidates),
        fallbacks=tuple(Candidate(label, model) for label, model in fallbacks),
    )


def _train(plan: TrainingPlan, y: np.ndarray = Y, lifecycle: str = "smooth"):
    return train_series("s", DS[: y.size], y, lifecycle, plan)


def _mean_losses(scores: list[dict]) -> dict[str, float]:
    frame = pd.DataFrame(scores)
    return frame.groupby("candidate")["scaled_quantile_loss"].mean().to_dict()


def _assert_valid_forecast(forecast: dict[float, np.ndarray]) -> None:
    matrix = np.vstack([forecast[q] for q in QUANTILES])
    assert matrix.shape == (len(QUANTILES), H)
    assert np.isfinite(matrix).all()
    assert (np.diff(matrix, axis=0) >= 0).all()


# --------------------------------------------------------------------------- one bad candidate


def test_a_failing_candidate_costs_only_that_series_that_candidate():
    good, bad = _series(100.0), _series(5000.0)
    history = pd.DataFrame(
        {
            "unique_id": np.repeat(["good", "bad"], N),
            "ds": np.tile(DS, 2),
            "y": np.concatenate([good, bad]),
        }
    ).sort_values(["unique_id", "ds"], ignore_index=True)
    lifecycle = pd.DataFrame({"unique_id": ["bad", "good"], "lifecycle": ["smooth", "smooth"]})
    plan = _plan(
        [
            ("Fragile", Scripted(misbehave="raise", when_level=float(bad[0]))),
            ("Last", Scripted(bias=(1.0,))),
            ("Drift", Scripted(bias=(3.0,))),
        ]
    )

    result = train_batch(history, lifecycle, plan, "W-SUN")

    ledger = result.ledger.set_index("unique_id")
    assert "Fragile backtest: RuntimeError: scripted failure" in ledger.loc["bad", "failures"]
    assert ledger.loc["good", "failures"] == ""
    assert (ledger["status"] == STATUS_OK).all()
    assert ledger.loc["bad", "winner"] != "Fragile"
    scored = result.scores.groupby("unique_id")["candidate"].agg(set)
    assert scored["bad"] == {"Last", "Drift"}  # the others are still scored for the bad series
    assert scored["good"] == {"Fragile", "Last", "Drift"}  # and the failing one for every other series
    assert result.forecasts.groupby("unique_id").size().to_dict() == {"bad": H, "good": H}


def test_non_finite_backtest_forecast_drops_the_candidate_and_is_recorded():
    plan = _plan([("NaNs", Scripted(misbehave="nan")), ("Last", Scripted())])
    result = _train(plan)
    assert result.ledger["status"] == STATUS_OK
    assert result.ledger["winner"] == "Last"
    assert "NaNs backtest: ValueError: non-finite backtest forecast" in result.ledger["failures"]
    assert set(_mean_losses(result.scores)) == {"Last"}


# --------------------------------------------------------------------------- the winner fails later


def test_winner_failing_at_refit_falls_back_to_the_next_best():
    plan = _plan(
        [
            ("Far", Scripted(TRUTH, bias=(6.0,))),
            ("Oracle", Scripted(TRUTH, misbehave="raise", when_length=N)),
            ("Close", Scripted(TRUTH, bias=(1.0,))),
        ]
    )
    result = _train(plan)
    losses = _mean_losses(result.scores)
    assert sorted(losses, key=losses.get) == ["Oracle", "Close", "Far"]
    ledger = result.ledger
    assert ledger["winner"] == "Oracle"
    assert ledger["model"] == "Close"
    assert ledger["status"] == STATUS_FALLBACK
    assert ledger["reason"] == "refit_failed"
    assert ledger["detail"].startswith("refit_failed: Oracle: RuntimeError")
    assert "refit_failed: Oracle" in ledger["failures"]
    _assert_valid_forecast(result.forecast)
    np.testing.assert_allclose(result.forecast[0.5], Y[-1] + 1.0)  # Close's refit forecast


@pytest.mark.parametrize(("misbehave", "gate_failure"), [("explode", "forecast_explosion"), ("nan", "non_finite_forecast")])
def test_winner_failing_the_quality_gate_falls_back_to_the_next_best(misbehave, gate_failure):
    plan = _plan(
        [
            ("Oracle", Scripted(TRUTH, misbehave=misbehave, when_length=N)),
            ("Close", Scripted(TRUTH, bias=(1.0,))),
        ]
    )
    result = _train(plan)
    ledger = result.ledger
    assert (ledger["winner"], ledger["model"], ledger["status"]) == ("Oracle", "Close", STATUS_FALLBACK)
    assert ledger["reason"] == "quality_gate"
    assert ledger["detail"] == f"quality_gate: Oracle: {gate_failure}"
    _assert_valid_forecast(result.forecast)


def test_final_fallback_catches_every_failed_candidate():
    naive, average = build_model("Naive", {}, 1), build_model("HistoricAverage", {}, 1)
    plan = _plan(
        [("Broken", Scripted(misbehave="raise")), ("Hopeless", Scripted(misbehave="nan"))],
        [("Naive", naive), ("HistoricAverage", average)],
    )
    result = _train(plan)
    ledger = result.ledger
    assert (ledger["status"], ledger["reason"], ledger["winner"], ledger["model"]) == (
        STATUS_FALLBACK,
        "no_candidate_backtested",
        "",
        "Naive",
    )
    assert "Broken backtest" in ledger["failures"] and "Hopeless backtest" in ledger["failures"]
    _assert_valid_forecast(result.forecast)
    np.testing.assert_allclose(result.forecast[0.5], Y[-1])  # Naive: the last value


def test_fallback_chain_walks_past_a_failing_fallback():
    average = build_model("HistoricAverage", {}, 1)
    plan = _plan(
        [("Broken", Scripted(misbehave="raise"))],
        [("BrokenToo", Scripted(misbehave="raise")), ("HistoricAverage", average)],
    )
    result = _train(plan)
    assert result.ledger["model"] == "HistoricAverage"
    assert result.ledger["status"] == STATUS_FALLBACK
    assert "refit_failed: BrokenToo" in result.ledger["failures"]
    np.testing.assert_allclose(result.forecast[0.5], Y.mean())


def test_a_series_no_model_can_forecast_is_quarantined_and_the_batch_goes_on():
    broken = _series(7000.0)
    plan = _plan(
        [("Picky", Scripted(misbehave="raise", when_level=float(broken[0])))],
        [("Fallback", Scripted(misbehave="raise", when_level=float(broken[0])))],
    )
    history = pd.DataFrame(
        {"unique_id": np.repeat(["a", "z"], N), "ds": np.tile(DS, 2), "y": np.concatenate([Y, broken])}
    )
    lifecycle = pd.DataFrame({"unique_id": ["a", "z"], "lifecycle": ["smooth", "smooth"]})
    result = train_batch(history, lifecycle, plan, "W-SUN")
    ledger = result.ledger.set_index("unique_id")
    assert ledger.loc["z", "status"] == STATUS_QUARANTINED
    assert ledger.loc["z", "reason"] == "all_models_failed"
    assert "Picky" in ledger.loc["z", "detail"] and "Fallback" in ledger.loc["z", "detail"]
    assert ledger.loc["a", "status"] == STATUS_OK
    assert set(result.forecasts["unique_id"]) == {"a"}


# --------------------------------------------------------------------------- the time limit


def test_a_candidate_past_the_time_limit_is_stopped_and_recorded():
    plan = _plan([("Hang", Scripted(misbehave="hang")), ("Last", Scripted())], fit_time_limit=0.5)
    started = time.perf_counter()
    result = _train(plan)
    elapsed = time.perf_counter() - started
    assert elapsed < SAFETY_SECONDS / 2  # stopped by the limit, not by the model giving up
    ledger = result.ledger
    assert (ledger["status"], ledger["winner"], ledger["model"]) == (STATUS_OK, "Last", "Last")
    assert "Hang backtest: FitTimeoutError" in ledger["failures"]
    assert "time limit of 0.5 s" in ledger["failures"]


def test_a_winner_past_the_time_limit_at_refit_falls_back():
    plan = _plan(
        [("Oracle", Scripted(TRUTH, misbehave="hang", when_length=N)), ("Close", Scripted(TRUTH, bias=(1.0,)))],
        fit_time_limit=0.5,
    )
    result = _train(plan)
    ledger = result.ledger
    assert (ledger["winner"], ledger["model"], ledger["status"], ledger["reason"]) == (
        "Oracle",
        "Close",
        STATUS_FALLBACK,
        "refit_failed",
    )
    assert "FitTimeoutError" in ledger["detail"]


# --------------------------------------------------------------------------- lifecycles


def test_new_series_skip_the_backtest_and_use_the_first_fallback():
    short = Y[:6]
    plan = _plan([("Last", Scripted(bias=(1.0,)))], [("Naive", build_model("Naive", {}, 1))])
    result = _train(plan, short, lifecycle="new")
    ledger = result.ledger
    assert (ledger["status"], ledger["reason"], ledger["model"], ledger["winner"]) == (
        STATUS_NEW,
        "short_history",
        "Naive",
        "",
    )
    assert result.scores == [] and result.backtest == []
    _assert_valid_forecast(result.forecast)


def test_ended_series_get_no_forecast():
    plan = _plan([("Last", Scripted())], [("Naive", build_model("Naive", {}, 1))])
    result = _train(plan, lifecycle="ended")
    assert result.ledger["status"] == STATUS_ENDED
    assert result.ledger["reason"] == "ended"
    assert result.forecast is None and result.scores == []


# --------------------------------------------------------------------------- selection


@pytest.mark.parametrize("order", [("A", "B"), ("B", "A")])
def test_ties_go_to_the_earlier_candidate_in_the_configured_order(order):
    plan = _plan([(label, Scripted(bias=(2.0,))) for label in order], ensemble_top_k=2)
    results = [_train(plan) for _ in range(2)]
    losses = _mean_losses(results[0].scores)
    assert losses["A"] == losses["B"] == pytest.approx(losses[ENSEMBLE_LABEL])  # a three-way tie
    assert [r.ledger["winner"] for r in results] == [order[0], order[0]]
    assert results[0].ledger["model"] == order[0]


def test_median_ensemble_competes_and_can_win():
    plan = _plan(
        [
            ("A", Scripted(TRUTH, bias=(1.0, 9.0), width=0.0)),
            ("B", Scripted(TRUTH, bias=(9.0, 1.0), width=0.0)),
            ("C", Scripted(TRUTH, bias=(-10.0,), width=0.0)),
        ],
        ensemble_top_k=3,
    )
    result = _train(plan)
    losses = _mean_losses(result.scores)
    # the median of (+1|+9, +9|+1, -10) is +1 at every step: better than any member
    assert losses[ENSEMBLE_LABEL] < min(losses["A"], losses["B"], losses["C"])
    assert losses[ENSEMBLE_LABEL] == pytest.approx(losses["A"] / 5)
    ledger = result.ledger
    assert (ledger["status"], ledger["winner"], ledger["model"]) == (STATUS_OK, ENSEMBLE_LABEL, ENSEMBLE_LABEL)
    assert ledger["ensemble_members"] == "A,B,C"
    # the refit: members forecast last value + their bias; the ensemble takes the median
    steps = np.arange(N, N + H)
    expected = np.median(
        [Y[-1] + np.where(steps % 2 == 0, 1.0, 9.0), Y[-1] + np.where(steps % 2 == 0, 9.0, 1.0), np.full(H, Y[-1] - 10.0)],
        axis=0,
    )
    np.testing.assert_allclose(result.forecast[0.5], expected)


def test_refit_uses_the_candidate_not_a_fallback_of_the_same_label():
    plan = _plan([("Last", Scripted(bias=(3.0,)))], [("Last", Scripted(bias=(50.0,)))])
    result = _train(plan)
    assert (result.ledger["model"], result.ledger["status"]) == ("Last", STATUS_OK)
    np.testing.assert_allclose(result.forecast[0.5], Y[-1] + 3.0)


# --------------------------------------------------------------------------- time_limit itself


def _in_thread(function) -> BaseException | None:
    """Run ``function`` in a new (non-main) thread; return what it raised."""
    outcome: list[BaseException | None] = [None]

    def target() -> None:
        try:
            function()
        except BaseException as exc:  # hand it to the test thread
            outcome[0] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(SAFETY_SECONDS + 10)
    assert not thread.is_alive()
    return outcome[0]


def test_time_limit_stops_a_busy_loop_in_a_worker_thread():
    started = time.perf_counter()

    def spin() -> None:
        with time_limit(0.3, "spin fit"):
            _busy(SAFETY_SECONDS)

    raised = _in_thread(spin)
    assert isinstance(raised, FitTimeoutError)
    assert "spin fit exceeded its time limit of 0.3 s" in str(raised)
    assert time.perf_counter() - started < SAFETY_SECONDS / 2


def test_time_limit_leaves_no_stray_exception_after_a_block_that_finished_in_time():
    def quick_then_busy() -> None:
        for _ in range(20):
            with time_limit(0.2, "quick"):
                sum(range(1000))
        _busy(0.6)  # well past every limit: a late timer must not fire into this

    assert _in_thread(quick_then_busy) is None
    quick_then_busy()  # in the main thread too


def test_time_limit_reports_a_timeout_the_block_swallowed():
    swallowed: list[str] = []

    def swallowing() -> None:
        with time_limit(0.2, "swallow"):
            try:
                _busy(SAFETY_SECONDS)
            except Exception as exc:  # a careless model catches everything
                swallowed.append(type(exc).__name__)

    raised = _in_thread(swallowing)
    assert swallowed == ["FitTimeoutError"]
    assert isinstance(raised, FitTimeoutError)
    assert "swallow exceeded" in str(raised)


def test_time_limit_passes_through_errors_that_are_not_its_own():
    with pytest.raises(ValueError, match="model bug"), time_limit(5.0):
        raise ValueError("model bug")
    # a FitTimeoutError raised inside (here by a nested, shorter limit) is not swallowed
    with pytest.raises(FitTimeoutError, match="inner exceeded"), time_limit(30.0, "outer"), time_limit(0.2, "inner"):
        _busy(SAFETY_SECONDS)
