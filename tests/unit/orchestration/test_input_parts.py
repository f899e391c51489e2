"""An input in parts (a folder of files, each series in one): prepared part by part, with the
same forecasts as the same panel in one file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecasting.config import ConfigError, load_settings
from forecasting.data.demo import generate_demo_panel
from forecasting.data.validation import DataSchemaError
from forecasting.orchestration.local import run_weekly
from forecasting.orchestration.run_catalog import Run
from forecasting.orchestration.steps.prepare import create_run_folder

pytestmark = pytest.mark.slow

TEST_CONFIG = Path(__file__).resolve().parents[3] / "config" / "test.yaml"
CANDIDATES = [{"name": "Naive"}, {"name": "SeasonalNaive"}, {"name": "HistoricAverage"}]


def _settings(root: Path, path: Path, **sections):
    return load_settings(TEST_CONFIG, {"output": {"root": str(root)}, "data": {"path": str(path)},
                                       "models": {"candidates": CANDIDATES}, **sections})


def _panel() -> pd.DataFrame:
    panel = generate_demo_panel(24, 104, "W-SUN", "2025-12-28", 5)
    panel.loc[panel["unique_id"] == panel["unique_id"].iloc[-1], "y"] = np.nan  # one series quarantined
    return panel


def _write_parts(panel: pd.DataFrame, folder: Path, n_parts: int) -> Path:
    folder.mkdir(parents=True)
    ids = sorted(panel["unique_id"].unique())
    for k in range(n_parts):
        part = panel[panel["unique_id"].isin(ids[k::n_parts])]
        part.to_parquet(folder / f"part-{k}.parquet", index=False)
    panel.iloc[0:0].to_parquet(folder / "part-empty.parquet", index=False)  # a part without rows is left out
    return folder


def _outputs(summary: dict, name: str) -> pd.DataFrame:
    frame = pd.read_parquet(Path(summary["run_dir"]) / f"{name}.parquet")
    keep = [c for c in frame.columns if c not in ("run_id", "published")]
    return frame[keep].sort_values([c for c in ("unique_id", "ds", "candidate") if c in keep]).reset_index(drop=True)


def test_a_folder_of_parts_forecasts_as_the_same_panel_in_one_file(tmp_path: Path):
    panel = _panel()
    single = tmp_path / "panel.parquet"
    panel.to_parquet(single, index=False)
    one = run_weekly(_settings(tmp_path / "one", single))
    parts = run_weekly(_settings(tmp_path / "parts", _write_parts(panel, tmp_path / "parts-in", 3)))

    for name in ("forecasts", "ledger", "leaderboard", "backtest", "scores"):
        pd.testing.assert_frame_equal(_outputs(parts, name), _outputs(one, name), obj=name)
    manifest = Run.load(parts["run_dir"]).manifest
    assert manifest.n_input_series == 24 and manifest.source.endswith("parts-in")
    assert manifest.data_fingerprint != Run.load(one["run_dir"]).manifest.data_fingerprint
    assert parts["counts"] == one["counts"] and parts["counts"].get("quarantined") == 1


def test_a_series_in_two_parts_is_refused_with_its_name(tmp_path: Path):
    panel = _panel()
    folder = tmp_path / "in"
    folder.mkdir()
    first = panel["unique_id"].value_counts().index[0]  # a series with a long history
    rows = panel[panel["unique_id"] == first]
    pd.concat([panel[panel["unique_id"] != first], rows.iloc[:20]]).to_parquet(folder / "a.parquet", index=False)
    rows.iloc[20:].to_parquet(folder / "b.parquet", index=False)
    with pytest.raises(DataSchemaError, match=f"series {first} lies in two parts"):
        create_run_folder(_settings(tmp_path / "out", folder))


def test_a_subset_of_a_folder_and_an_empty_folder(tmp_path: Path):
    panel = _panel()
    folder = _write_parts(panel, tmp_path / "in", 2)
    wanted = sorted(panel["unique_id"].unique())[:3]
    prepared = create_run_folder(_settings(tmp_path / "out", folder), wanted)
    lifecycle = pd.read_parquet(Run.load(prepared["run_dir"]).folder.input("lifecycle"))
    assert sorted(lifecycle["unique_id"]) == wanted
    with pytest.raises(ConfigError, match="none of the 1 requested series"):
        create_run_folder(_settings(tmp_path / "out", folder), ["no-such-series"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(Exception, match="holds no .parquet"):
        create_run_folder(_settings(tmp_path / "out", empty))
