"""A planner's own file through the CLI: column flags, date formats, exit codes and notices."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from forecasting.cli import main
from forecasting.data.demo import generate_demo_panel

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TEST_CONFIG = str(PROJECT_ROOT / "config" / "test.yaml")
MAPPING = ["--id-col", "item", "--time-col", "week", "--target-col", "sales"]


@pytest.fixture(autouse=True)
def _no_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in __import__("os").environ if k.startswith("FORECASTING__")]:
        monkeypatch.delenv(key)


@pytest.fixture(scope="module")
def sales_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 demo series as a planner's export: item, week (day-first), sales."""
    panel = generate_demo_panel(n_series=12, n_periods=104, seed=7)
    frame = panel.rename(columns={"unique_id": "item", "ds": "week", "y": "sales"})
    frame["week"] = frame["week"].dt.strftime("%d/%m/%Y")
    path = tmp_path_factory.mktemp("own") / "sales.csv"
    frame.to_csv(path, index=False)
    return path


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any], str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, json.loads(captured.out.strip().splitlines()[-1]), captured.err


def test_unmapped_columns_exit_3_naming_the_files_columns_and_the_flags(
    sales_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, error, stderr = _main(capsys, "validate", "--data", str(sales_csv), "--json")
    assert code == 3 and error["exit_code"] == 3
    assert "item, week, sales" in error["error"]
    assert "--id-col item --time-col week --target-col sales" in error["error"]
    assert "Traceback" not in stderr and "KeyError" not in stderr


def test_a_wrong_target_flag_names_the_setting_not_y(sales_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, error, _ = _main(capsys, "validate", "--data", str(sales_csv), "--id-col", "item", "--time-col", "week",
                           "--target-col", "units", "--json")
    assert code == 3
    assert "missing column 'units'" in error["error"] and "data.target_col" in error["error"]
    assert "'y'" not in error["error"]


def test_mapped_flags_and_day_first_dates_validate(sales_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report, stderr = _main(capsys, "validate", "--data", str(sales_csv), *MAPPING, "--json")
    assert code == 0, stderr
    assert report["n_input_series"] == 12 and report["as_of"].startswith("2025-12-28")
    assert "demo panel" not in stderr


def test_config_keys_map_the_columns_too(sales_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "own.yaml"
    config.write_text(f"data: {{path: {sales_csv}, id_col: item, time_col: week, target_col: sales, "
                      "date_format: '%d/%m/%Y'}\n")
    code, report, _ = _main(capsys, "validate", "--config", str(config), "--json")
    assert code == 0 and report["n_input_series"] == 12
    code, error, _ = _main(capsys, "validate", "--config", str(config), "--date-format", "%m/%d/%Y", "--json")
    assert code == 3 and "do not match the date format '%m/%d/%Y'" in error["error"]


def test_validate_exits_4_when_the_circuit_breaker_trips(
    sales_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["validate", "--data", str(sales_csv), *MAPPING])
    assert "circuit breaker: ok" in capsys.readouterr().out
    strict = tmp_path / "strict.yaml"
    strict.write_text("validation: {min_observations: 500}\n")  # every series too short
    args = ["validate", "--config", str(strict), "--data", str(sales_csv), *MAPPING]
    code, report, _ = _main(capsys, *args, "--json")
    assert code == 4 and report["exit_code"] == 4
    assert report["circuit_breaker"] == "tripped" and report["quarantined"] == 12
    assert main(args) == 4 and "circuit breaker: TRIPPED (100.0% quarantined, limit 20%)" in capsys.readouterr().out


def test_a_wrong_weekly_anchor_exits_2_suggesting_the_right_one(
    sales_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = pd.read_csv(sales_csv)
    frame["week"] = (pd.to_datetime(frame["week"], format="%d/%m/%Y") - pd.Timedelta(days=2)).dt.strftime("%Y-%m-%d")
    fridays = tmp_path / "fridays.csv"
    frame.to_csv(fridays, index=False)
    for command in (["validate"], ["run", "--config", TEST_CONFIG, "--output", str(tmp_path / "out")]):
        code, error, _ = _main(capsys, *command, "--data", str(fridays), *MAPPING, "--freq", "W-SUN", "--json")
        assert code == 2, error
        assert "forecast.freq W-SUN does not fit" in error["error"] and "use --freq W-FRI" in error["error"]
        assert "'week'" in error["error"]
    assert not (tmp_path / "out" / "runs").exists()
    code, _, _ = _main(capsys, "validate", "--data", str(fridays), *MAPPING, "--freq", "W-FRI", "--json")
    assert code == 0


def test_the_demo_panel_is_announced_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    code, report, stderr = _main(capsys, "validate", "--config", TEST_CONFIG, "--json")
    assert code == 0 and report["source"].startswith("demo(")
    assert "no --data given: using the built-in demo panel (40 synthetic series)" in stderr


@pytest.mark.slow
def test_run_on_own_columns_publishes_their_series(sales_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, summary, stderr = _main(capsys, "run", "--config", TEST_CONFIG, "--data", str(sales_csv), *MAPPING,
                                  "--output", str(tmp_path / "out"), "--json")
    assert code == 0, stderr[-2000:]
    assert "demo panel" not in stderr
    published = pd.read_parquet(summary["published"])
    assert set(published["unique_id"]) <= set(pd.read_csv(sales_csv)["item"]) and len(published)
    assert str(published["forecast_origin"].iloc[0]).startswith("2025-12-28")
