"""The report's run-wide sections: candidates, failures per model, plug-ins, the champion decision
and the out-of-sample estimate (pure figures, then a rendered report of a synthetic run)."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from support.synthetic_run import build_synthetic_run

from forecasting.orchestration.steps.report import write_report
from forecasting.reporting.figures import (
    candidate_figures,
    failure_counts,
    parse_failure,
    plugin_figures,
)


def _frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    board = pd.DataFrame({
        "unique_id": ["a", "a", "a", "b", "b", "c"],
        "candidate": ["ETS", "Naive", "Mine", "ETS", "Naive", "Naive"],
        "scaled_quantile_loss": [0.4, 1.0, 0.6, 0.8, 0.5, 1.2],
        "is_winner": [True, False, False, False, True, True],
    })
    ledger = pd.DataFrame({
        "unique_id": ["a", "b", "c", "d"],
        "status": ["ok", "ok", "fallback", "quarantined"],
        "model": ["ETS", "Naive", "HistoricAverage", ""],
        "failures": ["", "Mine cutoff 40: timeout: no result within 3 s for this series (child killed)",
                     "Mine cutoff 36: signal: child died of SIGSEGV | quality_gate: Naive: forecast_explosion",
                     ""],
    })
    return board, ledger


def test_failure_entries_are_parsed_into_model_stage_and_kind():
    assert parse_failure("AutoETS cutoff 120: ValueError: x") == ("AutoETS", "backtest", "ValueError")
    assert parse_failure("Hangs cutoff 96: timeout: no result") == ("Hangs", "backtest", "timeout")
    assert parse_failure("Theta future: FitTimeoutError: 60 s") == ("Theta", "future", "FitTimeoutError")
    assert parse_failure("no_forecast: Theta") == ("Theta", "future", "no_forecast")
    assert parse_failure("quality_gate: Naive: forecast_explosion") == ("Naive", "quality gate", "forecast_explosion")
    assert parse_failure("something else") == ("?", "", "something else")


def test_candidates_with_loss_wins_published_and_failures():
    board, ledger = _frames()
    rows = {c.candidate: c for c in candidate_figures(board, ledger, ["ETS", "Naive", "Mine", "Croston"], ["Mine"])}
    assert list(rows) == ["ETS", "Naive", "Mine", "Croston"]
    assert (rows["ETS"].series, rows["ETS"].mean_loss, rows["ETS"].wins, rows["ETS"].published) == (2, pytest.approx(0.6), 1, 1)
    assert (rows["Naive"].series, rows["Naive"].wins, rows["Naive"].failures) == (3, 2, 1)
    assert (rows["Mine"].kind, rows["Mine"].series, rows["Mine"].wins, rows["Mine"].failures) == ("plug-in", 1, 0, 2)
    assert rows["Croston"].series == 0 and rows["ETS"].kind == "built-in"
    counts = {(f.model, f.stage, f.kind): f.n_series for f in failure_counts(ledger)}
    assert counts == {("Mine", "backtest", "timeout"): 1, ("Mine", "backtest", "signal"): 1,
                      ("Naive", "quality gate", "forecast_explosion"): 1}


def test_a_plugin_shows_its_version_isolation_and_outcomes():
    board, ledger = _frames()
    candidates = candidate_figures(board, ledger, ["ETS", "Naive", "Mine"], ["Mine"])
    isolation = {"plugins": ["Mine"], "process": "child process per batch and plug-in", "network": "enforced",
                 "limits": {"Mine": {"timeout_seconds": 3.0, "memory_limit_mb": 2048}}}
    (plugin,) = plugin_figures(isolation, {"Mine": "mine-dist==0.2.0"}, candidates, ledger)
    assert (plugin.name, plugin.distribution, plugin.series, plugin.wins) == ("Mine", "mine-dist==0.2.0", 1, 0)
    assert plugin.failures == {"timeout": 1, "signal": 1} and plugin.limits["timeout_seconds"] == 3.0
    assert plugin_figures({}, {}, candidates, ledger) == []


def _text(path: Path) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", path.read_text())))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(build_synthetic_run(tmp_path_factory.mktemp("sections"), n_series=40, seed=3, fallback_share=0.2,
                                    n_shards=2)["run_dir"])


def test_report_without_registry_or_estimate_says_so(run_dir: Path):
    text = _text(Path(write_report(run_dir, find_previous=False)["report"]))
    assert "This run records no out-of-sample estimate" in text
    assert "Not registered: the registry is disabled" in text
    assert "No plug-in was configured for this run." in text
    board = pd.read_parquet(run_dir / "leaderboard.parquet")
    for candidate, group in board.groupby("candidate"):
        wins = int(group["is_winner"].sum())
        assert f"{candidate} built-in {len(group)} {group['scaled_quantile_loss'].mean():.4f}" in text
        assert re.search(rf"{candidate} built-in {len(group)} [\d.]+ [\d.]+ (?:[\d.]+%|-) (?:[\d.]+%|-) {wins} ", text)
    ledger = pd.read_parquet(run_dir / "ledger.parquet")
    gate = ledger[ledger["status"] == "fallback"]
    first = gate["winner"].value_counts()
    model, n = first.index[0], int(first.iloc[0])
    assert f"{model} quality gate forecast_explosion {n}" in text


def test_report_shows_the_decision_and_the_out_of_sample_block(run_dir: Path):
    registration = {"tracking_uri": "sqlite:///x", "model_name": "forecasting", "version": "7", "alias": "challenger",
                    "decision": {"alias": "challenger", "reason": "worse than the champion by more than the margin",
                                 "margin": 0.02, "compared_with_version": "6", "window_cutoff": "2025-09-28",
                                 "series_compared": 31, "series_not_comparable": 2, "weeks": 372,
                                 "new_loss": 0.61, "champion_loss": 0.55}}
    (run_dir / "registration.json").write_text(json.dumps(registration))
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["out_of_sample"] = {"scaled_quantile_loss": 0.6789, "series": 33, "per_horizon": {"1": 0.5, "13": 0.8}}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    try:
        text = _text(Path(write_report(run_dir, find_previous=False)["report"]))
    finally:
        (run_dir / "registration.json").unlink()
    assert "forecasting version 7" in text and "alias challenger" in text
    assert "compared with version 6" in text and "series compared 31" in text and "series not comparable 2" in text
    assert "this version 0.6100" in text and "champion 0.5500" in text and "ratio 1.109" in text
    assert "champion margin 2.0%" in text
    assert "scaled_quantile_loss 0.6789" in text and "series 33" in text and "per_horizon: 13 0.8000" in text
