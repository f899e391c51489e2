"""concat_parquet_atomic: Parquet parts (files or frames) one below the other, one part in memory at a time."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from forecasting.publishing.table import concat_parquet_atomic


def _file(tmp_path: Path, name: str, frame: pd.DataFrame) -> Path:
    path = tmp_path / f"{name}.parquet"
    frame.to_parquet(path, index=False)
    return path


def test_parts_are_read_back_as_pandas_concat_would_give_them(tmp_path: Path):
    a = pd.DataFrame({"unique_id": ["a", "a"], "ds": pd.to_datetime(["2024-01-07", "2024-01-14"]), "p50": [1.0, 2.0]})
    b = pd.DataFrame({"unique_id": ["b"], "ds": pd.to_datetime(["2024-01-07"]), "p50": [3.0]})
    target = tmp_path / "out" / "all.parquet"
    assert concat_parquet_atomic([_file(tmp_path, "a", a), _file(tmp_path, "b", b)], target)
    pd.testing.assert_frame_equal(pd.read_parquet(target), pd.concat([a, b], ignore_index=True))
    assert [p.name for p in target.parent.iterdir()] == ["all.parquet"]  # no temporary file left


def test_empty_parts_are_left_out_and_missing_columns_are_null(tmp_path: Path):
    a = pd.DataFrame({"unique_id": ["a"], "value": [1], "note": ["x"]})
    empty = pd.DataFrame({"unique_id": pd.Series(dtype=object)})
    b = pd.DataFrame({"unique_id": ["b"], "value": [2.5]})  # a float where the first part has an integer
    target = tmp_path / "all.parquet"
    assert concat_parquet_atomic([_file(tmp_path, "a", a), empty, b], target)
    read = pd.read_parquet(target)
    assert read["unique_id"].tolist() == ["a", "b"]
    assert read["value"].tolist() == [1.0, 2.5]
    assert read["note"].tolist()[0] == "x" and pd.isna(read["note"].tolist()[1])


def test_no_rows_anywhere_writes_nothing(tmp_path: Path):
    target = tmp_path / "all.parquet"
    empty = pd.DataFrame({"unique_id": pd.Series(dtype=object)})
    assert not concat_parquet_atomic([_file(tmp_path, "e", empty), empty], target)
    assert not concat_parquet_atomic([], target)
    assert not target.exists()
