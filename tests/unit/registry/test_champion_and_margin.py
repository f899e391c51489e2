"""Champion decision and switching margin on a real small backtest and on hand-made numbers.

The backtest comes from training itself (three demo series, cheap candidates, two windows);
the champion is a bundle built from manifests written here, so each test says exactly which
model (members and weights included) the champion holds.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from forecasting.config import load_settings
from forecasting.data.demo import generate_demo_panel
from forecasting.registry import evidence, heldout
from forecasting.registry.bundle import BundleForecaster
from forecasting.registry.champion import CHALLENGER, CHAMPION, Context, Decision, Policy, decide
from forecasting.registry.champion_backtest import champion_backtest
from forecasting.registry.comparison import NewRun, champion_evidence
from forecasting.registry.switching import KEPT, SWITCHED, decide_switching
from forecasting.training.fitting import forecast_quantiles
from forecasting.training.plan import TrainingPlan
from forecasting.training.selection_step import train_batch

H = 6
CANDIDATES = [{"name": "Naive"}, {"name": "SeasonalNaive"}, {"name": "HistoricAverage"}, {"name": "WindowAverage"}]
QUANTILES = [0.1, 0.5, 0.9]


@pytest.fixture(scope="module")
def run() -> dict:
    """A trained run over three demo series: its settings, history, ledger, scores and backtest."""
    settings = load_settings(None, {"models": {"candidates": CANDIDATES}, "forecast": {"horizon": H},
                                    "ensemble": {"rounds": 4}})
    history = generate_demo_panel(3, 80, "W-SUN", "2025-12-28", 11)
    history = history.sort_values(["unique_id", "ds"]).reset_index(drop=True)
    lifecycle = pd.DataFrame({"unique_id": sorted(history["unique_id"].unique()), "lifecycle": "smooth",
                              "demand_class": "smooth"})
    result = train_batch(history, lifecycle, TrainingPlan.from_settings(settings), "W-SUN")
    return {"settings": settings, "history": history, "ledger": result.ledger, "scores": result.scores,
            "backtest": result.backtest, "ids": list(lifecycle["unique_id"])}


def _champion(run: dict, models: dict[str, tuple[str, str]], as_of: str) -> BundleForecaster:
    winners = pd.DataFrame({"unique_id": list(models), "model": [m for m, _ in models.values()],
                            "ensemble_members": [e for _, e in models.values()], "status": "ok"})
    return BundleForecaster(run["settings"], winners, run["history"], run_id="champion-run", as_of=as_of)


def _cutoffs(run: dict) -> pd.Series:
    return run["backtest"].groupby("unique_id")["cutoff"].max()


def test_the_held_out_choice_never_reads_the_decision_weeks(run: dict):
    backtest, cutoffs = run["backtest"], _cutoffs(run)
    start = cutoffs.copy()  # a champion at least one horizon old: the whole last window is decided on
    cut = heldout.split(backtest, start)
    # by construction: whole windows ending at the start to choose on; the last window without actuals
    ends = cut.choosing.groupby(["unique_id", "cutoff"])["ds"].max()
    assert (ends <= ends.index.get_level_values("unique_id").map(start)).all()
    assert "y" not in cut.decision.columns and set(cut.decision["cutoff"]) == set(cutoffs)
    pairs = pd.concat([cut.choosing[["unique_id", "cutoff"]], cutoffs.rename("cutoff").reset_index()]).drop_duplicates()
    scales = heldout.scales_at(run["history"], pairs)
    chosen = heldout.choose(cut.choosing, scales, run["settings"])
    assert set(chosen) == set(run["ids"])

    # wild actuals in the decision weeks: the choice and the held-out forecasts stay the same
    later = backtest["ds"] > backtest["unique_id"].map(start)
    wild = backtest.assign(y=np.where(later, backtest["y"] * 50 + 1e4, backtest["y"]))
    wild_cut = heldout.split(wild, start)
    assert heldout.choose(wild_cut.choosing, scales, run["settings"]) == chosen
    pd.testing.assert_frame_equal(heldout.forecast_at(wild_cut.decision, chosen, QUANTILES),
                                  heldout.forecast_at(cut.decision, chosen, QUANTILES))
    # while actuals the choice may use do change it: the test can tell
    # (earlier actuals equal to Naive's median make Naive beat the ensemble in every window)
    naive = backtest[backtest["candidate"] == "Naive"].set_index(["unique_id", "cutoff", "ds"])["p50"]
    as_naive = backtest.join(naive.rename("naive"), on=["unique_id", "cutoff", "ds"])["naive"]
    changed = backtest.assign(y=np.where(~later, as_naive, backtest["y"]))
    loose = load_settings(None, {"models": {"candidates": CANDIDATES}, "forecast": {"horizon": H},
                                 "selection": {"min_windows": 1}})  # the run has two windows to choose on
    assert {m.label for m in heldout.choose(cut.choosing, scales, loose).values()} == {"Ensemble"}
    flat = heldout.choose(heldout.split(changed, start).choosing, scales, loose)
    assert "Naive" in {m.label for m in flat.values()}


def _new(run: dict, backtest: pd.DataFrame | None = None) -> NewRun:
    return NewRun(run["settings"], "2025-12-28", run["ledger"], run["backtest"] if backtest is None else backtest,
                  run["history"])


def test_two_versions_of_one_configuration_tie_on_every_series_ensembles_included(run: dict):
    a, b, c = run["ids"]
    champion = _champion(run, {
        a: ("MedianEnsemble", "Naive,SeasonalNaive,HistoricAverage"),
        b: ("WeightedEnsemble", "Naive:0.25,WindowAverage:0.75"),
        c: ("Naive", ""),
    }, as_of="2025-09-28")
    frame, summary = champion_evidence(_new(run), champion)
    assert frame["compared"].all() and summary["series_compared"] == 3
    assert (frame["weeks"] == H).all()
    np.testing.assert_allclose(frame["new_loss"], frame["champion_loss"])
    assert list(frame["new_model"]) == list(frame["champion_model"])
    # the new winners' own loss on the window they were chosen on flatters them
    assert summary["new_loss_in_sample"] <= summary["new_loss"]


def test_a_champion_with_other_candidates_is_refitted_and_judged_by_its_forecasts(run: dict):
    a, b, c = run["ids"]
    other = load_settings(None, {"forecast": {"horizon": H}, "ensemble": {"enabled": False},
                                 "models": {"candidates": [{"name": "RandomWalkWithDrift"}, {"name": "Naive"},
                                                           {"name": "WindowAverage", "params": {"window_size": 3}}]}})
    champion = BundleForecaster(other, pd.DataFrame({"unique_id": [a, b, c], "model": "Naive", "ensemble_members": "",
                                                     "status": "ok"}), run["history"], as_of="2025-09-28")
    rows = champion_backtest(champion, run["settings"], run["backtest"], run["history"], [a, b, c])
    assert set(rows["candidate"]) == {"RandomWalkWithDrift", "Naive", "WindowAverage"}
    # reused where configured alike (Naive); refitted at the cutoff where not (the others)
    cutoff = _cutoffs(run)[a]
    window = rows[(rows["unique_id"] == a) & (rows["cutoff"] == cutoff)]
    y = run["history"].loc[(run["history"]["unique_id"] == a) & (run["history"]["ds"] <= cutoff), "y"].to_numpy(float)
    plan = TrainingPlan.from_settings(other)
    drift = next(c for c in plan.candidates if c.label == "RandomWalkWithDrift")
    expected = forecast_quantiles(drift.model, y, H, plan.quantiles, plan.conformal_windows, 30.0)
    np.testing.assert_allclose(window.loc[window["candidate"] == "RandomWalkWithDrift", "p50"], expected[0.5])
    mine = run["backtest"][(run["backtest"]["unique_id"] == a) & (run["backtest"]["cutoff"] == cutoff)]
    np.testing.assert_allclose(window.loc[window["candidate"] == "WindowAverage", "p50"].to_numpy(),
                               np.full(H, y[-3:].mean()))
    assert not np.allclose(mine.loc[mine["candidate"] == "WindowAverage", "p50"].to_numpy(), y[-3:].mean())
    frame, summary = champion_evidence(_new(run), champion)
    assert summary["series_compared"] == 3
    assert set(frame["champion_model"]) <= {"RandomWalkWithDrift", "Naive", "WindowAverage",
                                            "median(Naive,RandomWalkWithDrift,WindowAverage)"}


def test_one_backtest_window_leaves_nothing_to_choose_on(run: dict):
    last = run["backtest"][run["backtest"]["cutoff"] == run["backtest"]["unique_id"].map(_cutoffs(run))]
    champion = _champion(run, {uid: ("Naive", "") for uid in run["ids"]}, as_of="2025-09-28")
    frame, summary = champion_evidence(_new(run, last), champion)
    assert summary["series_compared"] == 0
    assert set(frame["reason"]) == {"no held-out choice of the new version (no backtest window before the decision window)"}


def test_new_series_are_counted_with_the_reason_they_were_not_compared(run: dict):
    a, b, _ = run["ids"]
    champion = _champion(run, {a: ("Naive", ""), b: ("Naive", "")}, as_of="2025-09-28")
    _, summary = champion_evidence(_new(run), champion)
    assert summary["series_compared"] == 2
    assert json.loads(summary["not_comparable"]) == {"a new series: the champion does not know it": 1}


def test_compare_by_hand():
    start = pd.Series({"s": pd.Timestamp("2025-01-12")})
    dates = pd.date_range("2025-01-12", periods=3, freq="W-SUN")  # the first date is the start: not scored
    new = pd.DataFrame({"unique_id": "s", "ds": dates, "p50": [0.0, 10.0, 10.0], "model_key": "A"})
    champion = pd.DataFrame({"unique_id": "s", "ds": dates, "p50": [0.0, 12.0, 14.0], "model_key": "B"})
    actuals = pd.DataFrame({"unique_id": "s", "ds": dates, "y": [100.0, 10.0, 12.0]})
    frame = evidence.compare(new, champion, actuals, start, pd.Series({"s": 2.0}), [0.5])
    row = frame.iloc[0]
    # new: |10-10|, |12-10| -> pinball 0, 1 -> 2 * 0.5 / 2 = 0.5; champion: 1, 1 -> 1.0
    assert row["compared"] and row["weeks"] == 2
    assert row["new_loss"] == pytest.approx(0.5) and row["champion_loss"] == pytest.approx(1.0)
    summary = evidence.summarize(frame)
    assert summary["share_new_better"] == 1.0 and math.isnan(summary["difference_se"])


EVIDENCE = {"series_compared": 10, "series_not_comparable": 2, "new_loss": 1.05, "champion_loss": 1.0,
            "not_comparable": json.dumps({"a new series: the champion does not know it": 2}), "weeks": 40}
NOTHING = {"series_compared": 0, "series_not_comparable": 5, "not_comparable": json.dumps({"x": 5})}
CONTEXT = Context(champion_version="3", champion_as_of="2025-10-05", new_as_of="2025-12-28")


def test_margin_rule_and_first_version():
    assert decide({}, Context(), Policy()).alias == CHAMPION
    worse = decide(EVIDENCE, CONTEXT, Policy(margin=0.0))
    assert worse.alias == CHALLENGER and "+5.0%" in worse.reason and worse.compared_with_version == "3"
    assert decide(EVIDENCE, CONTEXT, Policy(margin=0.1)).alias == CHAMPION
    assert worse.champion_age_weeks == pytest.approx(12.0)


def test_undecidable_policy_and_stale_champion():
    keep = decide(NOTHING, CONTEXT, Policy(undecided="keep", max_champion_age_weeks=20))
    assert keep.alias == CHALLENGER and keep.policy == "keep" and "x (5 series)" in keep.reason
    assert decide(NOTHING, CONTEXT, Policy(undecided="promote", max_champion_age_weeks=20)).alias == CHAMPION
    stale = decide(NOTHING, CONTEXT, Policy(undecided="keep", max_champion_age_weeks=8))
    assert stale.alias == CHAMPION and stale.policy == "stale_champion"


def test_pins_operators_and_backfills():
    pinned = Context(**{**CONTEXT.__dict__, "pinned_by": "ana", "pinned_reason": "peak season"})
    decision = decide({**EVIDENCE, "new_loss": 0.5}, pinned, Policy())
    assert decision.alias == CHALLENGER and "pinned by ana: peak season" in decision.reason
    forced = Context(**{**CONTEXT.__dict__, "operator_alias": CHAMPION, "operator": "bo", "operator_reason": "fix"})
    decision = decide(EVIDENCE, forced, Policy())
    assert decision.alias == CHAMPION and decision.decided_by == "bo" and decision.new_loss == 1.05
    backfill = Context(champion_version="3", champion_as_of="2025-12-28", new_as_of="2025-10-05")
    assert decide({**EVIDENCE, "new_loss": 0.5}, backfill, Policy()).alias == CHALLENGER


def test_decision_round_trips_through_version_tags():
    decision = decide(EVIDENCE, CONTEXT, Policy(margin=0.05))
    tags = decision.tags()
    assert all(isinstance(v, str) for v in tags.values())
    assert Decision.from_tags(tags).record() == decision.record()  # record(): NaN as None, comparable


def test_switching_margin_keeps_the_previous_model_as_it_was(run: dict):
    ledger = run["ledger"].set_index("unique_id")
    ids = [uid for uid in run["ids"] if ledger.loc[uid, "status"] == "ok"]
    # the champion's model of each series: a median ensemble of other members than anything the new run chose
    previous = {uid: ("MedianEnsemble", "Naive,WindowAverage,HistoricAverage") for uid in ids}
    champion = _champion(run, previous, as_of="2025-09-28")
    decisions, rows = decide_switching(run["ledger"], run["scores"], run["history"], champion, 0.99, QUANTILES, H)
    decisions = decisions.set_index("unique_id")
    assert set(decisions["selection"]) == {KEPT}  # a 99 % margin keeps everything comparable
    assert (decisions["previous_members"] == "Naive,WindowAverage,HistoricAverage").all()
    # the kept series are forecast by the champion's model as it was: that median, refitted on the new history
    expected = champion.forecast(run["history"][run["history"]["unique_id"].isin(ids)], H)
    pd.testing.assert_frame_equal(rows.reset_index(drop=True), expected.reset_index(drop=True))
    assert set(rows["model_key"]) == {"median(HistoricAverage,Naive,WindowAverage)"}
    # with no margin, a new winner that is better on the same windows switches
    switched, _ = decide_switching(run["ledger"], run["scores"], run["history"], champion, 0.0, QUANTILES, H)
    better = switched["new_loss"] < switched["previous_loss"]
    assert (switched.loc[better, "selection"] == SWITCHED).all() and (switched.loc[~better, "selection"] == KEPT).all()
