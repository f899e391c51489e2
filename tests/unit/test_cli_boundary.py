"""The command line at its boundary: broken files give the same exit code whatever ``--as-of`` says,
every input series is in the ledger, an explain run id cannot leave the output root."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from forecasting.cli import EXIT_CONFIG, EXIT_DATA, EXIT_OK, main

DATES = pd.date_range("2024-01-07", periods=60, freq="W-SUN")


@pytest.fixture(autouse=True)
def _no_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("FORECASTING__")]:
        monkeypatch.delenv(key)


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any], str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, json.loads(captured.out.strip().splitlines()[-1]), captured.err


def _panel(ids=("a", "b", "c")) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.concat([pd.DataFrame({"unique_id": uid, "ds": DATES, "y": rng.uniform(5, 15, DATES.size)}) for uid in ids],
                     ignore_index=True)


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        "forecast: {horizon: 4, season_length: 4}\n"
        "models: {candidates: [{name: Naive}, {name: HistoricAverage}], fallback: [Naive]}\n"
        "ensemble: {enabled: false}\n"
        "compute: {executor: serial, n_shards: 1, progress: false}\n"
        f"output: {{root: {tmp_path / 'out'}}}\n"
        "registry: {enabled: false}\nreporting: {enabled: false}\n"
    )
    return config


def _broken_files(tmp_path: Path) -> dict[str, Path]:
    files = {}
    frame = _panel().astype({"ds": object})
    frame["ds"] = frame["ds"].dt.strftime("%Y-%m-%d") if hasattr(frame["ds"], "dt") else frame["ds"]
    files["missing_date_column"] = tmp_path / "no_ds.csv"
    _panel().drop(columns="ds").to_csv(files["missing_date_column"], index=False)
    files["semicolons"] = tmp_path / "semicolons.csv"
    _panel().to_csv(files["semicolons"], index=False, sep=";")
    unparseable = _panel()
    unparseable["ds"] = unparseable["ds"].dt.strftime("%Y-%m-%d")
    unparseable.loc[5, "ds"] = "next tuesday"
    files["unparseable_dates"] = tmp_path / "unparseable.csv"
    unparseable.to_csv(files["unparseable_dates"], index=False)
    year_1500 = unparseable.copy()
    year_1500.loc[5, "ds"] = "1500-03-04"
    files["year_1500"] = tmp_path / "year_1500.csv"
    year_1500.to_csv(files["year_1500"], index=False)
    return files


@pytest.mark.parametrize("command", ["run", "validate"])
def test_a_broken_file_is_exit_3_with_or_without_as_of(tmp_path, capsys, command):
    config = _config(tmp_path)
    for name, path in _broken_files(tmp_path).items():
        for as_of in ([], ["--as-of", "2024-12-29"]):
            code, result, err = _main(capsys, command, "--config", str(config), "--data", str(path), "--json", *as_of)
            assert code == EXIT_DATA, (name, as_of, result)
            assert result["error_type"] in ("DataSchemaError", "ColumnMappingError", "DataReadError"), (name, as_of)
            assert "Traceback" not in err, (name, as_of)
            # either the contract the file breaks, or the setting that maps the user's column to it
            assert "does not match the data contract" in result["error"] or "data.time_col" in result["error"], (
                name, as_of, result["error"])


def test_dates_with_offsets_or_zones_validate_like_they_run(tmp_path, capsys):
    config = _config(tmp_path)
    offsets = _panel()
    offsets["ds"] = offsets["ds"].dt.strftime("%Y-%m-%dT00:00:00+05:00")
    offsets.to_csv(tmp_path / "offsets.csv", index=False)
    zoned = _panel()
    zoned["ds"] = zoned["ds"].dt.tz_localize("America/New_York")
    zoned.to_parquet(tmp_path / "zoned.parquet")
    for path in (tmp_path / "offsets.csv", tmp_path / "zoned.parquet"):
        results = []
        for as_of in ([], ["--as-of", f"{DATES[-1]:%Y-%m-%d}"]):
            code, result, err = _main(capsys, "validate", "--config", str(config), "--data", str(path), "--json", *as_of)
            assert code == EXIT_OK, err
            assert result["quarantined"] == 0 and "wall-clock time" in result["notes"][0]
            results.append({k: v for k, v in result.items() if k != "source"})
        assert results[0] == results[1]
        assert results[0]["as_of"] == f"{DATES[-1]:%Y-%m-%d}T00:00:00"


def test_every_input_series_is_in_the_ledger_even_one_that_starts_after_as_of(tmp_path, capsys):
    panel = _panel()
    later = pd.DataFrame({"unique_id": "launched_later", "ds": DATES[50:], "y": 3.0})
    data = tmp_path / "history.parquet"
    pd.concat([panel, later], ignore_index=True).to_parquet(data)
    as_of = f"{DATES[45]:%Y-%m-%d}"
    code, result, err = _main(capsys, "run", "--config", str(_config(tmp_path)), "--data", str(data), "--as-of", as_of, "--json")
    assert code == EXIT_OK, err
    ledger = pd.read_parquet(result["ledger"]).set_index("unique_id")
    assert set(ledger.index) == {"a", "b", "c", "launched_later"}
    row = ledger.loc["launched_later"]
    assert (row["status"], row["reason"]) == ("not_started", "starts_after_as_of")
    assert row["detail"] == f"all 10 row(s) lie after as_of {as_of} (the first on {DATES[50]:%Y-%m-%d})"
    assert result["counts"]["not_started"] == 1


def test_explain_refuses_a_run_outside_the_output_root(tmp_path, capsys):
    root = tmp_path / "root"
    (root / "runs").mkdir(parents=True)
    elsewhere = tmp_path / "other" / "runs" / "20240101-abc"
    elsewhere.mkdir(parents=True)
    for name in ("manifest.json", "ledger.parquet", "leaderboard.parquet"):
        (elsewhere / name).write_text("{}")
    for run in ("../../other/runs/20240101-abc", str(elsewhere), "..", "20240101-abc/../../../other/runs/20240101-abc"):
        code, result, _ = _main(capsys, "explain", "s1", "--to", str(tmp_path / "x"), "--output", str(root),
                                "--run", run, "--json")
        assert code == EXIT_CONFIG, run
        assert "not a run id" in result["error"] and "--output" in result["error"], run


@pytest.mark.parametrize(("params", "message"), [
    ("{window_size: -3}", "models.candidates[1] (WindowAverage): window_size must be an integer >= 1, got -3"),
    ("{window_size: 2.5}", "window_size must be an integer >= 1, got 2.5"),
    ("{no_such: 1}", "WindowAverage got unknown parameters ['no_such']"),
])
@pytest.mark.parametrize("command", ["run", "validate"])
def test_model_parameters_are_checked_when_the_configuration_loads(tmp_path, capsys, params, message, command):
    config = tmp_path / "config.yaml"
    config.write_text(
        f"models: {{candidates: [{{name: Naive}}, {{name: WindowAverage, params: {params}}}]}}\n"
        f"output: {{root: {tmp_path / 'out'}}}\ncompute: {{executor: serial}}\n"
    )
    code, result, _ = _main(capsys, command, "--config", str(config), "--json")
    assert (code, result["error_type"]) == (EXIT_CONFIG, "ConfigError")
    assert message in result["error"]
    assert not (tmp_path / "out" / "runs").exists()  # refused before any work


def test_smoothing_weights_and_season_lengths_are_checked_too(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text("models: {candidates: [{name: TSB, params: {alpha_d: 0, alpha_p: 1.5}}, {name: Naive}],"
                      " fallback: [Naive]}\n")
    code, result, _ = _main(capsys, "validate", "--config", str(config), "--season-length", "1", "--json")
    assert code == EXIT_CONFIG
    assert "alpha_d must be a number in (0, 1], got 0; alpha_p must be a number in (0, 1], got 1.5" in result["error"]
