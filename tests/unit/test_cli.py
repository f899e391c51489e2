"""The command-line contract: exit codes, ``--json`` on the last stdout line, help and version.

The real console script runs in a subprocess where that matters (the installed entry point,
stdout against stderr); the other cases call ``forecasting.cli.main`` in this process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from forecasting import __version__
from forecasting.cli import format_summary, main
from forecasting.data.demo import generate_demo_panel

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONSOLE_SCRIPT = PROJECT_ROOT / ".venv" / "bin" / "forecasting"
if not CONSOLE_SCRIPT.exists():  # another environment layout: the script beside this interpreter
    CONSOLE_SCRIPT = Path(sys.executable).with_name("forecasting")
TEST_CONFIG = "config/test.yaml"
CONTRACT_COLUMNS = [
    "unique_id", "forecast_origin", "ds", "horizon", "p10", "p50", "p90",
    "model", "status", "run_id", "model_version", "schema_version",
]


def _cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORECASTING__")}
    return subprocess.run(
        [str(CONSOLE_SCRIPT), *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def _last_json(stdout: str) -> dict[str, Any]:
    lines = stdout.strip().splitlines()
    assert lines, "nothing on stdout"
    return json.loads(lines[-1])


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any], str]:
    """Run ``forecasting ARGS`` in this process: (exit code, the JSON line, stderr)."""
    code = main(list(args))
    captured = capsys.readouterr()
    return code, _last_json(captured.out), captured.err


@pytest.fixture(autouse=True)
def _no_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("FORECASTING__")]:
        monkeypatch.delenv(key)


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    return generate_demo_panel(n_series=40, n_periods=104, seed=7)


# --------------------------------------------------------------------------- the real console script


def test_version_and_help_of_every_command():
    version = _cli("--version")
    assert version.returncode == 0
    assert version.stdout.strip() == f"forecasting {__version__}"
    top = _cli("--help")
    assert top.returncode == 0
    commands = ["run", "validate", "demo-data"]
    assert all(command in top.stdout for command in commands)
    for command in commands:
        result = _cli(command, "--help")
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"usage: forecasting {command}")
    assert "--json" in _cli("run", "--help").stdout


@pytest.mark.slow
def test_run_json_contract(tmp_path: Path):
    result = _cli("run", "--config", TEST_CONFIG, "--output", str(tmp_path / "out"), "--json", "--executor", "serial")
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(result.stdout.strip().splitlines()) == 1  # only the JSON line: logs and progress go to stderr
    summary = _last_json(result.stdout)

    assert {"run_id", "forecasts", "ledger", "leaderboard", "counts"} <= set(summary)
    for key in ("forecasts", "ledger", "leaderboard"):
        assert Path(summary[key]).is_absolute() and Path(summary[key]).exists()
    forecasts = pd.read_parquet(summary["forecasts"])
    assert list(forecasts.columns) == CONTRACT_COLUMNS
    assert pd.api.types.is_datetime64_any_dtype(forecasts["forecast_origin"])
    assert (forecasts["run_id"] == summary["run_id"]).all()
    ledger = pd.read_parquet(summary["ledger"])
    assert not pd.read_parquet(summary["leaderboard"]).empty
    assert summary["counts"] == {k: int(v) for k, v in ledger["status"].value_counts().items()}
    assert sum(summary["counts"].values()) == 40
    assert forecasts["unique_id"].nunique() == sum(summary["counts"].get(s, 0) for s in ("ok", "fallback", "new"))
    # the human-readable form of the same result
    text = format_summary("run", summary)
    assert summary["run_id"] in text and summary["forecasts"] in text
    # the run report and its Prometheus file, in the run folder, last in the human-readable form
    assert Path(summary["report"]).parent == Path(summary["run_dir"]) and Path(summary["metrics"]).is_file()
    assert text.splitlines()[-1] == f"report:      {summary['report']}"


@pytest.mark.slow
def test_bad_config_value_exits_2_with_a_json_error():
    result = _cli("run", "--config", TEST_CONFIG, "--horizon", "0", "--json")
    assert result.returncode == 2
    error = _last_json(result.stdout)
    assert "forecast.horizon" in error["error"]
    assert error["exit_code"] == 2
    assert "forecast.horizon" in result.stderr


# --------------------------------------------------------------------------- in process


def test_unknown_yaml_key_exits_2_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    config = tmp_path / "bad.yaml"
    config.write_text("forecast:\n  horizonn: 5\n")
    code, error, _ = _main(capsys, "validate", "--config", str(config), "--json")
    assert code == 2
    assert "forecast.horizonn" in error["error"]
    assert error["error_type"] == "ConfigError"


def test_bad_flag_value_exits_2_and_still_prints_the_json_line(capsys: pytest.CaptureFixture[str]):
    code, error, stderr = _main(capsys, "run", "--horizon", "abc", "--json")
    assert code == 2
    assert "--horizon" in error["error"] and error["exit_code"] == 2
    assert "usage: forecasting run" in stderr


def test_missing_data_file_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    missing = tmp_path / "nowhere.parquet"
    code, error, _ = _main(capsys, "run", "--data", str(missing), "--output", str(tmp_path), "--json")
    assert code == 3
    assert str(missing) in error["error"]
    assert error["error_type"] == "DataReadError"


def test_broken_schema_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = tmp_path / "no-y.csv"
    pd.DataFrame({"unique_id": ["a"], "ds": ["2024-01-07"]}).to_csv(path, index=False)
    code, error, _ = _main(capsys, "validate", "--data", str(path), "--json")
    assert code == 3
    assert "missing column 'y'" in error["error"]


def test_circuit_breaker_exits_4_and_publishes_nothing(
    tmp_path: Path, panel: pd.DataFrame, capsys: pytest.CaptureFixture[str]
):
    broken = panel.copy()
    ids = sorted(broken["unique_id"].unique())[:10]  # 25 % of the series, above the 20 % limit
    broken.loc[broken["unique_id"].isin(ids), "y"] = np.nan
    path = tmp_path / "broken.parquet"
    broken.to_parquet(path, index=False)
    out = tmp_path / "out"
    code, error, _ = _main(
        capsys, "run", "--config", TEST_CONFIG, "--data", str(path), "--output", str(out), "--json", "--executor", "serial"
    )
    assert code == 4
    assert error["error_type"] == "CircuitBreakerError"
    assert "circuit breaker" in error["error"] and "non_finite_values 10" in error["error"]
    assert not (out / "forecasts").exists()


def test_validate_reports_quarantine_counts(tmp_path: Path, panel: pd.DataFrame, capsys: pytest.CaptureFixture[str]):
    ids = sorted(panel["unique_id"].unique())
    frame = panel.copy()
    frame.loc[frame[frame["unique_id"] == ids[0]].index[3], "y"] = np.inf
    frame = pd.concat([frame, frame[frame["unique_id"] == ids[1]].iloc[[2]]], ignore_index=True)
    path = tmp_path / "history.csv"
    frame.to_csv(path, index=False)

    code, report, _ = _main(capsys, "validate", "--data", str(path), "--freq", "W-SUN", "--json")
    assert code == 0
    assert report["n_input_series"] == 40
    assert report["quarantined"] == 2
    assert report["quarantine_reasons"] == {"non_finite_values": 1, "duplicate_timestamps": 1}
    assert report["circuit_breaker"] == "ok"
    assert {row["unique_id"] for row in report["quarantine_examples"]} == {ids[0], ids[1]}
    assert sum(report["lifecycle"].values()) == 38


def test_demo_data_writes_the_panel(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = tmp_path / "demo.parquet"
    code, result, _ = _main(capsys, "demo-data", str(path), "--n-series", "12", "--json")
    assert code == 0
    assert result == {"path": str(path.resolve()), "rows": len(pd.read_parquet(path)), "series": 12}
