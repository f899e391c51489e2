"""Own column names and date formats: mapped onto the contract, or one error naming the columns."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from forecasting.data.io import ColumnMappingError, map_columns, read_history


def _sales(weeks: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"item": ["A"] * len(weeks), "week": weeks, "sales": [3.0 + i for i in range(len(weeks))]})


def test_a_mapped_csv_reads_as_the_contract(tmp_path: Path) -> None:
    path = tmp_path / "sales.csv"
    _sales(["2024-01-07", "2024-01-14"]).assign(store=[1, 1]).to_csv(path, index=False)
    frame = read_history(path, "item", "week", "sales")
    assert list(frame.columns) == ["unique_id", "ds", "y", "store"]
    assert frame["ds"].tolist() == [pd.Timestamp("2024-01-07"), pd.Timestamp("2024-01-14")]
    assert frame["y"].dtype == float


def test_missing_columns_name_the_files_columns_the_settings_and_a_mapping() -> None:
    with pytest.raises(ColumnMappingError) as caught:
        map_columns(_sales(["2024-01-07"]), "sales.csv")
    message = str(caught.value)
    assert "missing column 'unique_id'" in message and "data.id_col" in message
    assert "missing column 'y'" in message and "data.target_col" in message
    assert "The input's columns are: item, week, sales." in message
    assert "--id-col item --time-col week --target-col sales" in message


def test_a_wrong_target_mapping_blames_the_users_column_not_y() -> None:
    frame = _sales(["2024-01-07"]).rename(columns={"item": "unique_id", "week": "ds"})
    with pytest.raises(ColumnMappingError) as caught:
        map_columns(frame, "sales.csv", target_col="units")
    message = str(caught.value)
    assert "missing column 'units'" in message and "data.target_col" in message
    assert "unique_id, ds, sales" in message and "--target-col sales" in message


def test_no_suggestion_when_the_file_leaves_doubt() -> None:
    frame = _sales(["2024-01-07"]).assign(price=[1.5], promo=[0.0])
    with pytest.raises(ColumnMappingError) as caught:
        map_columns(frame, "f.csv", "item", "week")
    assert "Name the input's columns with --target-col (data.target_col)" in str(caught.value)


def test_day_first_dates_are_read_when_only_one_format_fits() -> None:
    frame = map_columns(_sales(["28/12/2025", "04/01/2026"]), "f.csv", "item", "week", "sales")
    assert frame["ds"].tolist() == [pd.Timestamp("2025-12-28"), pd.Timestamp("2026-01-04")]


def test_dates_that_read_two_ways_need_the_date_format() -> None:
    frame = _sales(["03/04/2024", "10/04/2024"])
    with pytest.raises(ColumnMappingError, match=r"read two ways .*data.date_format \(flag --date-format\)"):
        map_columns(frame, "f.csv", "item", "week", "sales")
    parsed = map_columns(frame, "f.csv", "item", "week", "sales", date_format="%m/%d/%Y")
    assert parsed["ds"].tolist() == [pd.Timestamp("2024-03-04"), pd.Timestamp("2024-10-04")]


def test_dates_off_the_date_format_are_quoted() -> None:
    with pytest.raises(ColumnMappingError, match=r"column 'week'.*1 value\(s\) do not match .*'2024-01-14' \(row 1\)"):
        map_columns(_sales(["07/01/2024", "2024-01-14"]), "f.csv", "item", "week", "sales", date_format="%d/%m/%Y")


def test_unreadable_dates_and_values_name_the_users_column() -> None:
    with pytest.raises(ColumnMappingError, match=r"column 'week' .*'soon' \(row 1\).*data.date_format"):
        map_columns(_sales(["2024-01-07", "soon"]), "f.csv", "item", "week", "sales")
    bad = _sales(["2024-01-07", "2024-01-14"]).assign(sales=["1,5", "2"])
    with pytest.raises(ColumnMappingError, match=r"column 'sales' .*decimal comma.*'1,5' \(row 0\)"):
        map_columns(bad, "f.csv", "item", "week", "sales")


def test_a_mapping_onto_an_existing_contract_column_is_refused() -> None:
    frame = _sales(["2024-01-07"]).assign(y=[1.0])
    with pytest.raises(ColumnMappingError, match=r"data.target_col maps 'sales' onto 'y'"):
        map_columns(frame, "f.csv", "item", "week", "sales")
