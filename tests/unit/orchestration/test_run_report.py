"""The report step and explain on run folders: a synthetic run (real prepare and finalize
around synthetic training results, with fallbacks and quarantined series) and one small
real run."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from prometheus_format import parse
from support.synthetic_run import build_synthetic_run

from forecasting.cli import EXIT_CONFIG, EXIT_OK, main
from forecasting.config import ConfigError, load_settings
from forecasting.orchestration.explain_series import explain
from forecasting.orchestration.local import run_weekly
from forecasting.orchestration.run_catalog import RunFolder
from forecasting.orchestration.steps.report import previous_run, write_report


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """Two synthetic runs of the same as-of date under one root: (root, earlier, later)."""
    root = tmp_path_factory.mktemp("synthetic")
    earlier = build_synthetic_run(root, n_series=60, seed=1, fallback_share=0.1, quarantine_share=0.05, n_shards=2)
    later = build_synthetic_run(root, n_series=60, seed=2, fallback_share=0.1, quarantine_share=0.05, n_shards=2)
    return root, Path(earlier["run_dir"]), Path(later["run_dir"])


@pytest.fixture(scope="module")
def reported(runs) -> dict:
    """The later run's report and metrics, with two figures of the retraining loop."""
    return write_report(runs[2], monitoring={"drift_flagged_series": 3, "live_coverage": 0.71})


def _text(path: Path) -> str:
    """The report's visible text, tags dropped and whitespace collapsed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", path.read_text())))


def test_report_shows_the_ledger_and_leaderboard_numbers(runs, reported):
    _, earlier, later = runs
    result = reported
    assert result["previous_run"] == earlier.name
    ledger = pd.read_parquet(later / "ledger.parquet")
    board = pd.read_parquet(later / "leaderboard.parquet")
    text = _text(Path(result["report"]))
    for status, n in ledger["status"].value_counts().items():
        assert f"{n} {status} ({100 * n / len(ledger):.1f}%)" in text
    quarantined = ledger[ledger["status"] == "quarantined"]
    assert len(quarantined) >= 1
    assert f"non_finite_values {len(quarantined)} {', '.join(sorted(quarantined['unique_id'])[:5])}" in text
    fallback = ledger[ledger["status"] == "fallback"]
    assert f"quality_gate {len(fallback)}" in text
    for model, n in ledger.loc[ledger["model"] != "", "model"].value_counts().items():
        won = int((ledger["winner"] == model).sum())
        assert f"{model} {won} {n} " in text
    winners = board[board["is_winner"]].set_index("unique_id")["scaled_quantile_loss"]
    naive = board[board["candidate"] == "Naive"].set_index("unique_id")["scaled_quantile_loss"]
    assert f"this run's winners {winners[naive.index].mean():.4f}" in text
    assert f"Naive {naive.mean():.4f}" in text
    previous = pd.read_parquet(earlier / "leaderboard.parquet")
    before = previous[previous["is_winner"]].set_index("unique_id")["scaled_quantile_loss"]
    common = winners.index.intersection(before.index)
    assert f"previous run {earlier.name} {before[common].mean():.4f}" in text
    assert f"mean coverage of the winners {100 * board[board['is_winner']]['coverage'].mean():.1f}%" in text
    assert len(re.findall(r'<img src="data:image/png;base64,', Path(result["report"]).read_text())) >= 12
    summary = json.loads((later / "summary.json").read_text())
    assert summary["report"] == str(RunFolder(later).report)


def test_metrics_file_parses_and_matches_the_ledger(runs, reported):
    _, _, later = runs
    result = reported
    families = parse(Path(result["metrics"]).read_text())
    ledger = pd.read_parquet(later / "ledger.parquet")
    by_status = {labels["status"]: value for labels, value in families["forecasting_run_series"]["samples"]}
    assert by_status == {k: float(v) for k, v in ledger["status"].value_counts().items()}
    published = {labels["model"]: value for labels, value in families["forecasting_run_published_series"]["samples"]}
    assert published == {k: float(v) for k, v in ledger.loc[ledger["model"] != "", "model"].value_counts().items()}
    assert families["forecasting_monitoring_drift_flagged_series"]["samples"] == [({}, 3.0)]
    for name in ("forecasting_run_backtest_coverage", "forecasting_run_stage_duration_seconds",
                 "forecasting_run_winner_changed_series", "forecasting_run_as_of_timestamp_seconds"):
        assert name in families


def test_previous_run_is_the_earlier_one_and_the_first_has_none(runs):
    _, earlier, later = runs
    assert previous_run(later).path == earlier
    assert previous_run(earlier) is None


def _first(ledger: pd.DataFrame, status: str) -> str:
    return str(ledger.loc[ledger["status"] == status, "unique_id"].iloc[0])


def test_explain_a_winner_a_fallback_and_a_quarantined_series(runs, tmp_path: Path):
    root, _, later = runs
    ledger = pd.read_parquet(later / "ledger.parquet")
    board = pd.read_parquet(later / "leaderboard.parquet")

    ok = _first(ledger, "ok")
    result = explain(ok, tmp_path, root, later.name)
    own = board[board["unique_id"] == ok].sort_values("rank")
    assert result["margin"]["winner"] == own["candidate"].iloc[0] == result["winner"]
    assert result["margin"]["margin"] == pytest.approx(own["scaled_quantile_loss"].iloc[1] - own["scaled_quantile_loss"].iloc[0])
    page = _text(Path(result["path"]))
    for candidate, loss in zip(own["candidate"], own["scaled_quantile_loss"], strict=True):
        assert f"{candidate}" in page and f"{loss:.4f}" in page
    assert "Backtest of the top candidates" in page

    fallback = _first(ledger, "fallback")
    result = explain(fallback, tmp_path, root, later.name)
    assert result["status"] == "fallback" and result["model"] != result["winner"]
    assert any("not published" in line and result["model"] in line for line in result["verdict"])

    quarantined = _first(ledger, "quarantined")
    result = explain(quarantined, tmp_path, root, fmt="png")  # default: the newest run
    assert result["run_id"] == later.name
    assert "quarantined" in result["verdict"][0] and "non_finite_values" in result["verdict"][0]
    assert Path(result["path"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_explain_errors_name_the_series_and_the_run(runs, tmp_path: Path):
    root, _, later = runs
    with pytest.raises(ConfigError, match="'NOPE' is not in run"):
        explain("NOPE", tmp_path, root, later.name)
    with pytest.raises(ConfigError, match="no finished run nope"):
        explain("SKU-0001", tmp_path, root, "nope")


def test_explain_command_prints_the_path_and_keeps_the_exit_codes(runs, tmp_path: Path, capsys):
    root, _, later = runs
    ledger = pd.read_parquet(later / "ledger.parquet")
    series = _first(ledger, "ok")
    assert main(["explain", series, "--to", str(tmp_path), "--output", str(root)]) == EXIT_OK
    printed = capsys.readouterr().out.strip().splitlines()
    assert Path(printed[-1]).is_file() and printed[-1].endswith(".html")
    assert Path(printed[-1]).parent == tmp_path
    # like run, --output is the output root; the explanation lands in the run folder by default
    assert main(["explain", series, "--output", str(root), "--run", later.name, "--format", "png"]) == EXIT_OK
    printed = capsys.readouterr().out.strip().splitlines()
    assert Path(printed[-1]).parent == later and Path(printed[-1]).read_bytes()[:4] == b"\x89PNG"
    assert main(["explain", "NOPE", "--output", str(root), "--json"]) == EXIT_CONFIG
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["exit_code"] == EXIT_CONFIG


@pytest.mark.slow
def test_a_real_run_records_stage_times_and_ends_with_its_report(tmp_path: Path):
    settings = load_settings(None, {
        "output": {"root": str(tmp_path)}, "demo": {"n_series": 10, "n_periods": 60}, "forecast": {"horizon": 4},
        "models": {"candidates": [{"name": "Naive"}, {"name": "HistoricAverage"}], "fallback": ["HistoricAverage"]},
        "compute": {"executor": "serial", "progress": False, "n_shards": 2},
        "reporting": {"textfile_dir": str(tmp_path / "textfile")},
    })
    summary = run_weekly(settings)
    run_dir = Path(summary["run_dir"])
    timings = json.loads(RunFolder(run_dir).timings.read_text())
    assert set(timings) == {"prepare", "train", "finalize", "publish", "report"}
    assert Path(summary["report"]).is_file() and summary["report"] == str(RunFolder(run_dir).report)
    text = _text(Path(summary["report"]))
    stage_table = text[text.index("Wall time per stage"):]
    for stage, seconds in timings.items():
        if stage != "report":
            assert f"{stage} {seconds:.1f}" in stage_table
    # the report's own row: its time up to its last chart, at most the stage's recorded time
    shown = float(re.search(r" report (\d+\.\d)", stage_table).group(1))
    assert 0 < shown <= timings["report"] + 0.05
    families = parse((tmp_path / "textfile" / "forecasting.prom").read_text())
    stages = {labels["stage"]: v for labels, v in families["forecasting_run_stage_duration_seconds"]["samples"]}
    assert set(stages) == set(timings) and stages["report"] <= timings["report"]
    assert {k: v for k, v in stages.items() if k != "report"} == pytest.approx({k: v for k, v in timings.items() if k != "report"})
