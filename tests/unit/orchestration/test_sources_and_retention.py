"""Dated input snapshots (file template, glob, SQL query) and the retention policy."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from forecasting.config import load_settings
from forecasting.data.io import DataReadError
from forecasting.orchestration.run_input import dated_source, run_settings, with_snapshot
from forecasting.orchestration.steps.prepare import prepare_task
from forecasting.orchestration.steps.retention import apply_retention


def _panel(ids: list[str], end: str) -> pd.DataFrame:
    ds = pd.date_range(end=end, periods=3, freq="W-SUN")
    return pd.DataFrame([{"item": i, "week": d, "units": float(n)} for i in ids for n, d in enumerate(ds)])


def _config(tmp_path: Path, source: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"output:\n  root: {tmp_path / 'out'}\n"
        "data: {id_col: item, time_col: week, target_col: units}\n"
        f"source:\n{source}"
    )
    return str(path)


def test_a_file_template_reads_the_snapshot_of_the_as_of_date(tmp_path: Path) -> None:
    for part, ids in (("1", ["a"]), ("2", ["b"])):
        folder = tmp_path / "2025-03-02"
        folder.mkdir(exist_ok=True)
        _panel(ids, "2025-03-02").to_csv(folder / f"part-{part}.csv", index=False)
    _panel(["c"], "2025-02-23").to_csv(tmp_path / "other.csv", index=False)
    config = _config(tmp_path, f"  path_template: '{tmp_path}/{{as_of:%Y-%m-%d}}/part-*.csv'\n")
    assert dated_source(config)
    settings = with_snapshot(run_settings(config, "2025-03-02"))
    snapshot = pd.read_parquet(settings.data.path)
    assert sorted(snapshot["unique_id"].unique()) == ["a", "b"]  # both files of that date, nothing else
    assert settings.data.id_col == "unique_id"
    with pytest.raises(DataReadError, match="no input snapshot for as_of 2025-03-09"):
        with_snapshot(run_settings(config, "2025-03-09"))


def test_a_query_reads_rows_up_to_as_of_from_the_url_in_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'source.db'}"
    _panel(["a", "b"], "2025-03-09").to_sql("sales", sa.create_engine(url), index=False)
    # SQLite keeps timestamps as text: compare dates (PostgreSQL compares timestamps directly).
    config = _config(tmp_path, "  query: SELECT item, week, units FROM sales WHERE date(week) <= date(:as_of)\n")
    with pytest.raises(DataReadError, match="FORECASTING_SOURCE_URL"):
        with_snapshot(run_settings(config, "2025-03-02"))
    monkeypatch.setenv("FORECASTING_SOURCE_URL", url)
    snapshot = pd.read_parquet(with_snapshot(run_settings(config, "2025-03-02")).data.path)
    assert len(snapshot) == 4 and pd.to_datetime(snapshot["ds"]).max() == pd.Timestamp("2025-03-02")


def test_a_source_needs_exactly_one_kind() -> None:
    with pytest.raises(Exception, match="either path_template or query"):
        load_settings(overrides={"source": {"path_template": "x", "query": "y"}})


def _run(root: Path, run_id: str, as_of: str) -> None:
    folder = root / "runs" / run_id
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"as_of": as_of}))


def test_retention_deletes_old_runs_and_snapshots_but_keeps_published_ones(tmp_path: Path) -> None:
    root = tmp_path / "out"
    _run(root, "old-published", "2025-01-05")
    _run(root, "old", "2025-01-12")
    _run(root, "recent", "2025-05-25")
    (root / "forecasts").mkdir()
    # Series a's newest published forecast is from old-published; b's old forecast was superseded.
    pd.DataFrame({"unique_id": ["a", "b"], "forecast_origin": pd.Timestamp("2025-01-05"),
                  "run_id": ["old-published", "old"]}).to_parquet(root / "forecasts" / "origin=2025-01-05.parquet")
    pd.DataFrame({"unique_id": ["b"], "forecast_origin": pd.Timestamp("2025-05-25"),
                  "run_id": ["recent"]}).to_parquet(root / "forecasts" / "origin=2025-05-25.parquet")
    (root / "snapshots").mkdir()
    for name in ("20250105-aaaa.parquet", "20250525-bbbb.parquet"):
        (root / "snapshots" / name).write_bytes(b"")
    pruned: list[list[str]] = []
    settings = load_settings(overrides={"output": {"root": str(root)}, "retention": {"keep_weeks": 4}})
    result = apply_retention(settings, pd.Timestamp("2025-06-01"), prune_registry=pruned.append)
    assert result == {"deleted_runs": ["old"], "deleted_snapshots": ["20250105-aaaa.parquet"], "pruned_versions": None}
    assert sorted(p.name for p in (root / "runs").iterdir()) == ["old-published", "recent"]
    assert pruned == [["old"]]
    keep_all = load_settings(overrides={"output": {"root": str(root)}, "retention": {"keep_weeks": None}})
    assert apply_retention(keep_all, pd.Timestamp("2030-01-01")) == {"deleted_runs": [], "deleted_snapshots": []}


def test_the_scheduled_date_is_the_as_of_of_a_dated_source_only(tmp_path: Path) -> None:
    for end in ("2025-03-02", "2025-03-09"):
        _panel(["a", "b"], end).to_csv(tmp_path / f"{end}.csv", index=False)
    dated = _config(tmp_path, f"  path_template: '{tmp_path}/{{as_of:%Y-%m-%d}}.csv'\n")
    assert prepare_task(dated, None, scheduled="2025-03-02")["run_id"].startswith("20250302-")
    assert prepare_task(dated, "2025-03-09", scheduled="2025-03-02")["run_id"].startswith("20250309-")
    fixed = tmp_path / "fixed.yaml"
    fixed.write_text(f"output:\n  root: {tmp_path / 'out'}\ndata: {{path: {tmp_path / '2025-03-02.csv'}, "
                     "id_col: item, time_col: week, target_col: units}\n")
    assert not dated_source(str(fixed))
    # A fixed file has no snapshot per date: it forecasts from its own last date.
    assert prepare_task(str(fixed), None, scheduled="2030-01-06")["run_id"].startswith("20250302-")


def test_the_cli_run_reads_the_snapshot_of_a_dated_source(tmp_path: Path) -> None:
    """``run_weekly`` (``forecasting run``) prepares as the DAG does: a dated source's snapshot."""
    from forecasting.config import ConfigError
    from forecasting.orchestration.local import run_weekly

    weeks = pd.date_range(end="2025-07-06", periods=60, freq="W-SUN")
    panel = pd.DataFrame([{"item": item, "week": week, "units": 10.0 * (k + 1) + n % 4}
                          for k, item in enumerate(["a", "b"]) for n, week in enumerate(weeks)])
    for end in ("2025-03-02", "2025-07-06"):
        panel[panel["week"] <= end].to_csv(tmp_path / f"{end}.csv", index=False)
    config = Path(_config(tmp_path, f"  path_template: '{tmp_path}/{{as_of:%Y-%m-%d}}.csv'\n"))
    cheap = {"models": {"candidates": [{"name": "Naive"}, {"name": "SeasonalNaive"}]}, "ensemble": {"enabled": False},
             "compute": {"executor": "serial", "n_shards": 1, "progress": False}, "registry": {"enabled": False},
             "database": {"enabled": False}, "reporting": {"enabled": False}}
    with pytest.raises(ConfigError, match="need an as_of date"):
        run_weekly(load_settings(config, cheap))
    summary = run_weekly(load_settings(config, {**cheap, "forecast": {"as_of": "2025-03-02"}}))
    root = tmp_path / "out"
    assert [p.name[:9] for p in (root / "snapshots").iterdir()] == ["20250302-"]
    assert summary["run_id"].startswith("20250302-")
    published = pd.read_parquet(root / "forecasts" / "origin=2025-03-02.parquet")
    assert sorted(published["unique_id"].unique()) == ["a", "b"]
    assert pd.Timestamp(published["forecast_origin"].iloc[0]) == pd.Timestamp("2025-03-02")
