"""Champion decision and switching margin on hand-made numbers (pure functions)."""

from __future__ import annotations

import math

import pandas as pd

from forecasting.evaluation.selection import keep_previous
from forecasting.registry.champion import CHALLENGER, CHAMPION, Decision, decide


def _winners(models: dict[str, str], members: dict[str, str] | None = None) -> pd.DataFrame:
    members = members or {}
    return pd.DataFrame(
        {"unique_id": list(models), "model": list(models.values()), "ensemble_members": [members.get(k, "") for k in models]}
    )


def _scores(rows: list[tuple[str, str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["unique_id", "candidate", "cutoff", "scaled_quantile_loss"]).assign(
        cutoff=lambda f: pd.to_datetime(f["cutoff"])
    )


SCORES = _scores([
    # an older window that must not count
    ("a", "Naive", "2025-09-28", 0.1), ("a", "AutoETS", "2025-09-28", 9.0),
    ("a", "Naive", "2025-12-28", 1.0), ("a", "AutoETS", "2025-12-28", 0.8),
    ("b", "Naive", "2025-12-28", 2.0), ("b", "AutoETS", "2025-12-28", 2.4),
    ("c", "Naive", "2025-12-28", 5.0), ("c", "MedianEnsemble", "2025-12-28", 4.0),
])


def test_first_version_is_champion():
    decision = decide(_winners({"a": "Naive"}), None, SCORES, 0.0)
    assert decision.alias == CHAMPION and decision.reason == "no champion yet"


def test_compared_on_the_latest_window_and_common_series_only():
    new = _winners({"a": "AutoETS", "b": "AutoETS", "z": "Naive"})
    champion = _winners({"a": "Naive", "b": "Naive", "y": "Naive"})
    decision = decide(new, champion, SCORES, 0.0, "3")
    # new: (0.8 + 2.4) / 2 = 1.6; champion: (1.0 + 2.0) / 2 = 1.5 -> worse -> challenger
    assert decision.alias == CHALLENGER
    assert math.isclose(decision.new_loss, 1.6) and math.isclose(decision.champion_loss, 1.5)
    assert decision.series_compared == 2 and decision.window_cutoff == "2025-12-28"
    assert decision.compared_with_version == "3"
    # within a 10 % margin the new version is not worse by more than the margin
    assert decide(new, champion, SCORES, 0.1, "3").alias == CHAMPION


def test_a_median_ensemble_of_other_members_is_not_comparable():
    new = _winners({"c": "MedianEnsemble"}, {"c": "Naive,AutoETS"})
    other_members = _winners({"c": "MedianEnsemble"}, {"c": "Naive,AutoTheta"})
    decision = decide(new, other_members, SCORES, 0.0, "1")
    assert decision.series_compared == 0 and decision.series_not_comparable == 1 and decision.alias == CHALLENGER
    same = decide(new, _winners({"c": "MedianEnsemble"}, {"c": "Naive,AutoETS"}), SCORES, 0.0, "1")
    assert same.series_compared == 1 and same.alias == CHAMPION


def test_decision_round_trips_through_version_tags():
    decision = decide(_winners({"a": "AutoETS"}), _winners({"a": "Naive"}), SCORES, 0.05, "7")
    tags = decision.tags()
    assert all(isinstance(v, str) for v in tags.values())
    assert Decision.from_tags(tags) == decision


def test_switching_margin_keeps_the_previous_winner_unless_beaten_by_the_margin():
    losses = {"AutoETS": 0.95, "Naive": 1.0, "HistoricAverage": 1.2}
    ranking = ["AutoETS", "Naive", "HistoricAverage"]
    assert keep_previous(ranking, losses, "Naive", 0.1) == (["Naive", "AutoETS", "HistoricAverage"], "kept_by_margin")
    assert keep_previous(ranking, losses, "Naive", 0.04) == (ranking, "switched")
    assert keep_previous(ranking, losses, "Naive", 0.0) == (ranking, "")
    assert keep_previous(ranking, losses, "AutoETS", 0.1) == (ranking, "")
    assert keep_previous(ranking, losses, "Croston", 0.1) == (ranking, "")  # not scored this time
    assert keep_previous(ranking, losses, None, 0.1) == (ranking, "")
