"""Training a shard: raw backtests per batch, then calibration, the pooled ensemble, selection
and the quality gate over the shard (``training.batch``, then ``training.selection_step``).

The plans are built by hand from tiny scripted models, so each failure mode is exact: a model
that raises, hangs past the time limit, returns NaN or explodes, for one series (by its first
value) or at one history length (the forecast of the future, from the whole history).
``train_batch`` runs both steps in this process, as one shard.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace

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
from forecasting.evaluation.procedure import ENSEMBLE
from forecasting.evaluation.weighted_ensemble import parse_weights
from forecasting.models.base import Forecast, ForecastModel
from forecasting.models.catalog import build_model
from forecasting.training.batch import BatchRaw, backtest_batch
from forecasting.training.plan import Candidate, TrainingPlan
from forecasting.training.selection_step import ShardResult, select_shard, train_batch

H = 4
N = 48  # backtest windows cut after 32, 36, 40 and 44 observations: the latest three are scored
CUTOFFS = (32, 36, 40, 44)
QUANTILES = (0.1, 0.5, 0.9)
P = ["p10", "p50", "p90"]
SAFETY_SECONDS = 20.0  # a hanging model gives up on its own after this (a broken limit fails, never hangs)
# The ensemble is the two noisy candidates alone (their prior, no greedy round): a clearly better
# single candidate leaves it on the evidence of its windows.
WEAK_ENSEMBLE = {"ensemble_prior": ("Noisy", "Noisy2"), "ensemble_rounds": 0, "prior_rounds": 1.0}


def _busy(seconds: float) -> None:
    """Spin in Python bytecode (where the asynchronous timeout lands) for ``seconds``."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


class Scripted(ForecastModel):
    """Continues the true series (the one of ``truths`` its history starts), plus ``bias`` and noise.

    Without a matching truth the base is the last observed value. The noise (``noise`` times a
    standard normal seeded by ``seed`` and the history length) differs from window to window,
    so calibration cannot take it out as it takes out a constant bias. ``misbehave`` ("raise",
    "hang", "nan", "explode") happens only for a history of length ``when_length`` and / or a
    series whose first value is ``when_level`` (always when both are None). Quantiles are
    ``point + width * (q - 0.5)``: native.
    """

    tags = {"native_quantiles": True, "demand_types": ("smooth", "intermittent"), "min_history": 1}

    def __init__(
        self,
        truths: Sequence[Sequence[float]] = (),
        bias: float = 0.0,
        noise: float = 0.0,
        seed: int = 0,
        width: float = 2.0,
        misbehave: str = "",
        when_length: int | None = None,
        when_level: float | None = None,
    ) -> None:
        self.truths = truths
        self.bias = bias
        self.noise = noise
        self.seed = seed
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
        self.history_ = y.copy()

    def _predict(self, h: int, quantiles: tuple[float, ...], X_future: np.ndarray | None) -> Forecast:
        n = self.history_.size
        base = np.full(h, self.history_[-1])
        for truth in map(np.asarray, self.truths):
            if truth.size >= n + h and np.array_equal(truth[:n], self.history_):
                base = truth[n : n + h].astype(np.float64)
        point = base + self.bias + self.noise * np.random.default_rng([self.seed, n]).standard_normal(h)
        if self.trigger_ and self.misbehave == "nan":
            point = np.full(h, np.nan)
        if self.trigger_ and self.misbehave == "explode":
            point = np.full(h, 1e12)
        return Forecast(point=point, quantiles={q: point + self.width * (q - 0.5) for q in quantiles})


def _series(level: float = 100.0, n: int = N) -> np.ndarray:
    t = np.arange(n, dtype=np.float64)
    return level + 10.0 * np.sin(t / 3.0) + 0.5 * t  # starts exactly at `level`


Y = _series()
TRUTH = (tuple(Y),)
DS = pd.date_range("2024-01-07", periods=N, freq="W-SUN")


NOISY2 = ("Noisy2", Scripted(TRUTH, noise=5.0, seed=7))


def _plan(
    candidates: Sequence[tuple[str, ForecastModel]],
    fallbacks: Sequence[tuple[str, ForecastModel]] = (),
    **settings: object,
) -> TrainingPlan:
    return TrainingPlan(
        horizon=H,
        quantiles=QUANTILES,
        season_length=1,
        n_windows=len(CUTOFFS),
        step=H,
        history_cap=1000,
        fit_time_limit=float(settings.pop("fit_time_limit", 30.0)),
        conformal_windows=2,
        explosion_factor=10.0,
        candidates=tuple(Candidate(label, model) for label, model in candidates),
        fallbacks=tuple(Candidate(label, model) for label, model in fallbacks),
        **settings,
    )


def _frames(series: Mapping[str, np.ndarray], lifecycle: Mapping[str, str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    history = pd.concat(
        [pd.DataFrame({"unique_id": uid, "ds": DS[: y.size], "y": y}) for uid, y in sorted(series.items())],
        ignore_index=True,
    )
    ids = sorted(series)
    cycles = [(lifecycle or {}).get(uid, "smooth") for uid in ids]
    return history, pd.DataFrame({"unique_id": ids, "lifecycle": cycles, "demand_class": "smooth"})


def _train(plan: TrainingPlan, series: Mapping[str, np.ndarray], lifecycle: Mapping[str, str] | None = None) -> ShardResult:
    history, frame = _frames(series, lifecycle)
    return train_batch(history, frame, plan, "W-SUN")


def _mean_losses(result: ShardResult, uid: str = "s") -> dict[str, float]:
    scores = result.scores[result.scores["unique_id"] == uid]
    return scores.groupby("candidate")["scaled_quantile_loss"].mean().to_dict()


def _published(result: ShardResult, uid: str = "s") -> np.ndarray:
    return result.forecasts.loc[result.forecasts["unique_id"] == uid, P].to_numpy()


def _alternative(result: ShardResult, label: str, uid: str = "s") -> np.ndarray:
    """The calibrated forecast ``label`` gave ``uid`` (what it would have published)."""
    rows = result.candidates[(result.candidates["unique_id"] == uid) & (result.candidates["candidate"] == label)]
    return rows.sort_values("horizon")[P].to_numpy()


def _assert_valid(forecast: np.ndarray) -> None:
    assert forecast.shape == (H, len(QUANTILES))
    assert np.isfinite(forecast).all()
    assert (np.diff(forecast, axis=1) >= 0).all()


# --------------------------------------------------------------------------- one bad candidate


def _fragile_plan(bad: np.ndarray, truths: tuple, **settings: object) -> TrainingPlan:
    return _plan(
        [
            ("Fragile", Scripted(truths, noise=0.5, seed=1, misbehave="raise", when_level=float(bad[0]))),
            ("Close", Scripted(truths, noise=1.0, seed=2)),
            ("Far", Scripted(truths, noise=4.0, seed=3)),
        ],
        **settings,
    )


def test_a_failing_candidate_costs_only_that_series_that_candidate():
    good, bad = _series(100.0), _series(5000.0)
    plan = _fragile_plan(bad, (tuple(good), tuple(bad)), ensemble_prior=("Fragile", "Close"), ensemble_rounds=0)

    result = _train(plan, {"good": good, "bad": bad})

    ledger = result.ledger.set_index("unique_id")
    for cutoff in CUTOFFS:
        assert f"Fragile cutoff {cutoff}: RuntimeError: scripted failure on {cutoff} observations" in ledger.loc["bad", "failures"]
    assert f"Fragile future: RuntimeError: scripted failure on {N} observations" in ledger.loc["bad", "failures"]
    assert ledger.loc["good", "failures"] == ""
    assert (ledger["status"] == STATUS_OK).all()
    assert ledger.loc["good", "model"] == "Fragile"  # better than the ensemble on its windows
    assert ledger.loc["bad", "model"] == ENSEMBLE
    assert ledger.loc["bad", "ensemble_members"] == "Fragile:0.5,Close:0.5"  # the pool's weights, shared
    scored = result.scores.groupby("unique_id")["candidate"].agg(set)
    assert scored["bad"] == {"Close", "Far", ENSEMBLE}  # the others are still scored for the bad series
    assert scored["good"] == {"Fragile", "Close", "Far", ENSEMBLE}  # and the failing one for every other series
    assert set(result.candidates.loc[result.candidates["unique_id"] == "bad", "candidate"]) == {"Close", "Far", ENSEMBLE}
    assert result.forecasts.groupby("unique_id").size().to_dict() == {"bad": H, "good": H}
    for uid in ("good", "bad"):  # the bad series' ensemble is made of the member it has
        _assert_valid(_published(result, uid))
    assert len(result.scores[(result.scores["unique_id"] == "bad") & (result.scores["candidate"] == ENSEMBLE)]) == 3


def test_a_series_the_ensemble_cannot_forecast_goes_on_to_its_best_single_candidate():
    good, bad = _series(100.0), _series(5000.0)
    plan = _fragile_plan(bad, (tuple(good), tuple(bad)))  # Fragile is the best: the greedy rounds weight it alone

    result = _train(plan, {"good": good, "bad": bad})

    ledger = result.ledger.set_index("unique_id")
    assert result.pools["weights"].iloc[0] == "Fragile:1"
    assert (ledger.loc["good", "status"], ledger.loc["good", "model"]) == (STATUS_OK, ENSEMBLE)
    # the bad series has its windows (not a short history): a fallback, to the best of the others
    losses = _mean_losses(result, "bad")
    assert losses["Close"] < losses["Far"]
    assert (ledger.loc["bad", "status"], ledger.loc["bad", "reason"], ledger.loc["bad", "model"]) == (
        STATUS_FALLBACK, "no_forecast", "Close"
    )
    assert ledger.loc["bad", "detail"] == "no_forecast: Ensemble"
    np.testing.assert_array_equal(_published(result, "bad"), _alternative(result, "Close", "bad"))


def test_a_failure_at_one_origin_costs_the_candidate_that_window_only():
    plan = _plan([("Fragile", Scripted(TRUTH, misbehave="raise", when_length=40)), ("Close", Scripted(TRUTH, noise=1.0))])
    result = _train(plan, {"s": Y})
    ledger = result.ledger.iloc[0]
    assert ledger["failures"] == "Fragile cutoff 40: RuntimeError: scripted failure on 40 observations starting at 100"
    fragile = result.scores[result.scores["candidate"] == "Fragile"]
    close = result.scores[result.scores["candidate"] == "Close"]
    assert len(close) == 3 and len(fragile) == 2  # the window cut after 40 observations is Close's only
    assert DS[40 - 1] in set(close["cutoff"]) and DS[40 - 1] not in set(fragile["cutoff"])


def test_non_finite_forecasts_are_dropped_and_recorded():
    plan = _plan([("NaNs", Scripted(TRUTH, misbehave="nan")), ("Last", Scripted())])
    result = _train(plan, {"s": Y})
    ledger = result.ledger.iloc[0]
    assert (ledger["status"], ledger["model"], ledger["ensemble_members"]) == (STATUS_OK, ENSEMBLE, "Last:1")
    for cutoff in CUTOFFS:
        assert f"NaNs cutoff {cutoff}: ValueError: non-finite forecast" in ledger["failures"]
    assert "NaNs future: ValueError: non-finite forecast" in ledger["failures"]
    for frame in (result.scores, result.backtest, result.candidates):
        assert set(frame["candidate"]) == {"Last", ENSEMBLE}
    _assert_valid(_published(result))


# --------------------------------------------------------------------------- the chain
# (the walk itself: tests/unit/evaluation/test_fallback.py; here the order training gives it and its ledger)


@pytest.mark.parametrize(
    ("misbehave", "reason", "recorded"),
    [
        ("explode", "quality_gate: Oracle: forecast_explosion", ""),
        ("nan", "no_forecast: Oracle", "Oracle future: ValueError: non-finite forecast"),
        ("raise", "no_forecast: Oracle", "Oracle future: RuntimeError: scripted failure on 48"),
    ],
)
def test_a_chosen_candidate_failing_at_the_future_falls_back_to_the_ensemble(misbehave, reason, recorded):
    plan = _plan(
        [
            ("Noisy", Scripted(TRUTH, noise=5.0, seed=1)),
            ("Oracle", Scripted(TRUTH, misbehave=misbehave, when_length=N)),
            ("Close", Scripted(TRUTH, noise=1.0, seed=2)),
            NOISY2,
        ],
        **WEAK_ENSEMBLE,
    )
    result = _train(plan, {"s": Y})
    ledger = result.ledger.iloc[0]
    # Oracle beat the ensemble in every window: chosen on that evidence ...
    assert ledger["selection"].startswith("evidence: loss 0.000 vs ensemble") and ledger["selection"].endswith("better in 3")
    # ... but has no publishable future forecast: the next in the chain is the ensemble
    assert (ledger["winner"], ledger["model"], ledger["status"]) == ("Oracle", ENSEMBLE, STATUS_FALLBACK)
    assert (ledger["reason"], ledger["detail"]) == (reason.split(":")[0], reason)
    assert reason in ledger["failures"] and recorded in ledger["failures"]
    assert ledger["ensemble_members"] == "Noisy:0.5,Noisy2:0.5"
    np.testing.assert_array_equal(_published(result), _alternative(result, ENSEMBLE))
    _assert_valid(_published(result))


def test_when_the_ensemble_fails_the_gate_too_the_chain_goes_on_by_backtest_loss():
    plan = _plan([
        ("Far", Scripted(TRUTH, noise=5.0, seed=1)),
        ("Oracle", Scripted(TRUTH, misbehave="explode", when_length=N)),
        ("Close", Scripted(TRUTH, noise=1.0, seed=2)),
    ])
    result = _train(plan, {"s": Y})
    losses = _mean_losses(result)
    assert sorted(set(losses) - {ENSEMBLE}, key=losses.get) == ["Oracle", "Close", "Far"]
    ledger = result.ledger.iloc[0]
    assert parse_weights(result.pools["weights"].iloc[0])["Oracle"] > 0  # the ensemble explodes with its member
    assert (ledger["winner"], ledger["model"], ledger["status"], ledger["reason"]) == (
        ENSEMBLE, "Close", STATUS_FALLBACK, "quality_gate"
    )
    assert ledger["detail"] == "quality_gate: Ensemble: forecast_explosion"
    assert ledger["failures"] == "quality_gate: Ensemble: forecast_explosion | quality_gate: Oracle: forecast_explosion"
    np.testing.assert_array_equal(_published(result), _alternative(result, "Close"))


def test_without_the_ensemble_the_best_single_candidate_wins_and_falls_back_to_the_next_best():
    plan = _plan(
        [
            ("Far", Scripted(TRUTH, noise=5.0, seed=1)),
            ("Oracle", Scripted(TRUTH, misbehave="explode", when_length=N)),
            ("Close", Scripted(TRUTH, noise=1.0, seed=2)),
        ],
        ensemble=False,
    )
    result = _train(plan, {"s": Y})
    losses = _mean_losses(result)
    assert sorted(losses, key=losses.get) == ["Oracle", "Close", "Far"]  # no ensemble scored
    ledger = result.ledger.iloc[0]
    assert (ledger["winner"], ledger["model"], ledger["status"], ledger["reason"]) == (
        "Oracle", "Close", STATUS_FALLBACK, "quality_gate"
    )
    assert ledger["detail"] == "quality_gate: Oracle: forecast_explosion"
    assert ledger["ensemble_members"] == ""
    np.testing.assert_array_equal(_published(result), _alternative(result, "Close"))


def test_the_fallback_models_catch_a_series_every_candidate_failed_on():
    naive, average = build_model("Naive", {}, 1), build_model("HistoricAverage", {}, 1)
    plan = _plan(
        [("Broken", Scripted(misbehave="raise")), ("Hopeless", Scripted(misbehave="nan"))],
        [("Naive", naive), ("HistoricAverage", average)],
    )
    result = _train(plan, {"s": Y})
    ledger = result.ledger.iloc[0]
    assert (ledger["status"], ledger["reason"], ledger["model"]) == (STATUS_FALLBACK, "no_forecast", "Naive")
    assert "Broken cutoff 32: RuntimeError" in ledger["failures"] and "Hopeless cutoff 32: ValueError" in ledger["failures"]
    assert set(result.scores["candidate"]) == {"Naive", "HistoricAverage"}  # fallbacks are backtested and calibrated too
    forecast = _published(result)
    _assert_valid(forecast)
    np.testing.assert_allclose(forecast[:, 1], Y[-1])  # Naive: the last value (calibration keeps the median)


def test_the_chain_walks_past_a_failing_fallback():
    average = build_model("HistoricAverage", {}, 1)
    plan = _plan(
        [("Broken", Scripted(misbehave="raise"))],
        [("BrokenToo", Scripted(misbehave="raise")), ("HistoricAverage", average)],
    )
    result = _train(plan, {"s": Y})
    ledger = result.ledger.iloc[0]
    assert (ledger["model"], ledger["status"]) == ("HistoricAverage", STATUS_FALLBACK)
    assert "BrokenToo future: RuntimeError" in ledger["failures"]
    np.testing.assert_allclose(_published(result)[:, 1], Y.mean())


def test_a_series_no_model_can_forecast_is_quarantined_and_the_batch_goes_on():
    broken = _series(7000.0)
    plan = _plan(
        [("Picky", Scripted(misbehave="raise", when_level=float(broken[0])))],
        [("Fallback", Scripted(misbehave="raise", when_level=float(broken[0])))],
    )
    result = _train(plan, {"a": Y, "z": broken})
    ledger = result.ledger.set_index("unique_id")
    assert ledger.loc["z", "status"] == STATUS_QUARANTINED
    assert ledger.loc["z", "reason"] == "all_models_failed"
    assert ledger.loc["z", "detail"] == "no_forecast: Ensemble" and ledger.loc["z", "model"] == ""
    assert "Picky future: RuntimeError" in ledger.loc["z", "failures"]
    assert "Fallback future: RuntimeError" in ledger.loc["z", "failures"]
    assert ledger.loc["a", "status"] == STATUS_OK
    assert set(result.forecasts["unique_id"]) == {"a"}


# --------------------------------------------------------------------------- the time limit


def test_a_candidate_past_the_time_limit_is_stopped_and_recorded():
    plan = _plan([("Hang", Scripted(misbehave="hang")), ("Last", Scripted())], fit_time_limit=0.5)
    started = time.perf_counter()
    result = _train(plan, {"s": Y})
    assert time.perf_counter() - started < SAFETY_SECONDS / 2  # stopped by the limit, not by the model giving up
    ledger = result.ledger.iloc[0]
    assert (ledger["status"], ledger["model"], ledger["ensemble_members"]) == (STATUS_OK, ENSEMBLE, "Last:1")
    # the limit covers the candidate on the series: every origin is lost, and recorded
    for where in [f"cutoff {c}" for c in CUTOFFS] + ["future"]:
        assert f"Hang {where}: FitTimeoutError: Hang on 5 origins exceeded its time limit of 0.5 s" in ledger["failures"]
    assert "Hang" not in set(result.scores["candidate"])


def test_a_choice_past_the_time_limit_at_the_future_falls_back():
    plan = _plan(
        [("Noisy", Scripted(TRUTH, noise=5.0, seed=1)), ("Oracle", Scripted(TRUTH, misbehave="hang", when_length=N)),
         NOISY2],
        fit_time_limit=0.5,
        **WEAK_ENSEMBLE,
    )
    result = _train(plan, {"s": Y})
    ledger = result.ledger.iloc[0]
    assert (ledger["winner"], ledger["model"], ledger["status"], ledger["reason"]) == (
        "Oracle", ENSEMBLE, STATUS_FALLBACK, "no_forecast"
    )
    assert "Oracle future: FitTimeoutError" in ledger["failures"]
    assert len(result.scores[result.scores["candidate"] == "Oracle"]) == 3  # its backtest finished in time


# --------------------------------------------------------------------------- lifecycles


def test_ended_series_get_no_forecast():
    plan = _plan([("Last", Scripted())], [("Naive", build_model("Naive", {}, 1))])
    series, lifecycle = {"active": Y, "gone": _series(300.0)}, {"gone": "ended"}
    result = _train(plan, series, lifecycle)
    ledger = result.ledger.set_index("unique_id")
    assert (ledger.loc["gone", "status"], ledger.loc["gone", "reason"]) == (STATUS_ENDED, "ended")
    assert ledger.loc["active", "status"] == STATUS_OK
    for frame in (result.forecasts, result.scores, result.backtest, result.candidates):
        assert set(frame["unique_id"]) == {"active"}
    assert set(backtest_batch(*_frames(series, lifecycle), plan).raw["unique_id"]) == {"active"}  # not even backtested


def test_a_short_series_gets_the_ensemble_of_its_pool_with_status_new():
    a, b, c = _series(100.0), _series(300.0), _series(200.0)
    short = c[:6]  # too short for a backtest window
    truths = (tuple(a), tuple(b), tuple(c))
    plan = _plan(
        [("Noisy", Scripted(truths, noise=5.0, seed=1)), ("Close", Scripted(truths, noise=1.0, seed=2))],
        [("Naive", build_model("Naive", {}, 1))],
    )
    result = _train(plan, {"a": a, "b": b, "short": short}, {"short": "new"})
    ledger = result.ledger.set_index("unique_id")
    assert (ledger.loc["short", "status"], ledger.loc["short", "reason"]) == (STATUS_NEW, "short_history")
    assert (ledger.loc["short", "winner"], ledger.loc["short", "model"]) == (ENSEMBLE, ENSEMBLE)
    assert ledger.loc["short", "n_windows"] == 0 and ledger.loc["short", "selection"] == "default (no backtest window)"
    assert (ledger.loc[["a", "b"], "status"] == STATUS_OK).all()
    assert "short" not in set(result.scores["unique_id"]) | set(result.backtest["unique_id"])
    # the pool's ensemble, with the weights the long series' windows chose
    weights = parse_weights(result.pools["weights"].iloc[0])
    assert parse_weights(ledger.loc["short", "ensemble_members"]) == pytest.approx(weights)
    published = _published(result, "short")
    _assert_valid(published)
    np.testing.assert_array_equal(published, _alternative(result, ENSEMBLE, "short"))
    members = sum(w * _alternative(result, label, "short")[:, 1] for label, w in weights.items())
    np.testing.assert_allclose(published[:, 1], members)
    assert not np.allclose(published[:, 1], short[-1])  # not the naive forecast


def test_a_pool_without_any_backtest_window_gets_the_ensemble_of_its_prior():
    plan = _plan(
        [("Up", Scripted(bias=1.0)), ("Down", Scripted(bias=-1.0)), ("Off", Scripted(bias=30.0))],
        ensemble_prior=("Up", "Down"),
    )
    series = {"s1": Y[:6], "s2": _series(300.0, 6)}
    result = _train(plan, series, {"s1": "new", "s2": "new"})
    ledger = result.ledger.set_index("unique_id")
    assert (ledger["status"] == STATUS_NEW).all() and (ledger["model"] == ENSEMBLE).all()
    assert (ledger["ensemble_members"] == "Up:0.5,Down:0.5").all()
    for uid, y in series.items():
        np.testing.assert_allclose(_published(result, uid)[:, 1], y[-1])  # (last + 1 + last - 1) / 2


# --------------------------------------------------------------------------- selection


@pytest.mark.parametrize("order", [("A", "B"), ("B", "A")])
def test_ties_follow_the_configured_order(order):
    twins = [(label, Scripted(TRUTH, noise=1.0, seed=1)) for label in order]
    plan = _plan([*twins, ("Noisy", Scripted(TRUTH, noise=5.0, seed=2)), NOISY2], **WEAK_ENSEMBLE)
    result = _train(plan, {"s": Y})
    losses = _mean_losses(result)
    assert losses["A"] == losses["B"] < losses[ENSEMBLE]
    ledger = result.ledger.iloc[0]
    assert (ledger["winner"], ledger["model"]) == (order[0], order[0])  # both beat the ensemble alike
    alone = _train(replace(plan, ensemble=False), {"s": Y}).ledger.iloc[0]
    assert (alone["winner"], alone["model"]) == (order[0], order[0])
    pooled = _train(_plan(twins), {"s": Y})
    assert pooled.pools["weights"].iloc[0] == f"{order[0]}:1"  # greedy rounds: ties to the earlier member


def test_backtest_rows_are_what_would_have_been_published():
    """Calibrated, quantiles sorted, and clipped at 0 for a series without negative values."""
    t = np.arange(N, dtype=np.float64)
    low = np.round(2.0 + 2.0 * np.sin(t / 2.0))  # 0 to 4: calibrated lower quantiles fall below 0
    truth = (tuple(low),)
    plan = _plan([
        # a constant bias: calibration moves its outer quantiles onto the truth, below its median
        ("Biased", Scripted(truth, bias=2.0)),
        ("Noisy", Scripted(truth, noise=2.0, seed=1)),
    ])
    result = _train(plan, {"s": low})
    rows = result.backtest
    assert set(rows["candidate"]) == {"Biased", "Noisy", ENSEMBLE} and len(rows) == 3 * 3 * H
    values = rows[P].to_numpy()
    assert (np.diff(values, axis=1) >= 0).all()
    assert (values >= 0).all() and (values[:, 0] == 0).any()
    biased = rows[rows["candidate"] == "Biased"]
    np.testing.assert_allclose(biased["p90"] - biased["p50"], 2.0)  # its median sorted above the bounds
    # the scores are those of these rows
    for (label, cutoff), part in rows.groupby(["candidate", "cutoff"]):
        score = result.scores[(result.scores["candidate"] == label) & (result.scores["cutoff"] == cutoff)].iloc[0]
        inside = (part["y"] >= part["p10"]) & (part["y"] <= part["p90"])
        assert score["coverage"] == pytest.approx(inside.mean())
    # and the future is published the same way
    published = _published(result)
    _assert_valid(published)
    assert (published >= 0).all()
    np.testing.assert_array_equal(published, _alternative(result, result.ledger["model"].iloc[0]))


# --------------------------------------------------------------------------- the two steps


def test_a_fallback_under_a_candidate_label_is_that_candidate():
    plan = _plan([("Last", Scripted(bias=3.0))], [("Last", Scripted(bias=50.0))])
    raw = backtest_batch(*_frames({"s": Y}), plan).raw
    assert not raw.duplicated(["unique_id", "candidate", "length", "step"]).any()
    assert sorted(raw["length"].unique()) == [*CUTOFFS, N]
    np.testing.assert_allclose(raw.loc[raw["length"] == N, "p50"], Y[-1] + 3.0)


def test_a_shard_cut_into_batches_chooses_as_if_it_were_one():
    series = {f"s{i}": _series(100.0 * (i + 1)) for i in range(4)}
    truths = tuple(tuple(y) for y in series.values())
    plan = _plan([("Noisy", Scripted(truths, noise=5.0, seed=1)), ("Close", Scripted(truths, noise=1.0, seed=2)),
                  ("Last", Scripted())])
    history, lifecycle = _frames(series)
    whole = train_batch(history, lifecycle, plan, "W-SUN")
    batches = [
        backtest_batch(history[history["unique_id"].isin(ids)], lifecycle[lifecycle["unique_id"].isin(ids)], plan)
        for ids in (["s0", "s1"], ["s2", "s3"])
    ]
    split = select_shard(BatchRaw.concat(batches), history, lifecycle, plan, "W-SUN")
    for name in ShardResult.FRAMES:
        pd.testing.assert_frame_equal(getattr(split, name), getattr(whole, name))
