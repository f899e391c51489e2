"""The published forecast table (contract version 1): build it, write it atomically.

Layout: ``<root>/forecasts/origin=<YYYY-MM-DD>.parquet`` holds the table of one
forecast origin: the union of its runs, the newest run winning per series. A
publish replaces that file with ``os.replace`` under a file lock, so readers see
the old version or the new one, never half of either.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from forecasting.data.contract import SCHEMA_VERSION, forecast_table_columns, quantile_labels

KEY = ["unique_id", "forecast_origin", "ds"]


def build_forecast_table(
    forecasts: pd.DataFrame, forecast_origin: pd.Timestamp, run_id: str, quantiles: Sequence[float], model_version: str = ""
) -> pd.DataFrame:
    """Contract-v1 rows from the training layer's forecast frame."""
    table = forecasts.copy()
    table["forecast_origin"] = pd.Timestamp(forecast_origin)
    table["run_id"] = run_id
    table["model_version"] = model_version
    table["schema_version"] = SCHEMA_VERSION
    table["unique_id"] = table["unique_id"].astype(str)
    table["horizon"] = table["horizon"].astype("int64")
    for label in quantile_labels(quantiles):
        table[label] = table[label].astype("float64")
    columns = forecast_table_columns(quantiles)
    return table[columns].sort_values(["unique_id", "ds"]).reset_index(drop=True)


def origin_path(root: Path, forecast_origin: pd.Timestamp) -> Path:
    return Path(root) / "forecasts" / f"origin={pd.Timestamp(forecast_origin):%Y-%m-%d}.parquet"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_atomic(frame: pd.DataFrame, path: Path) -> None:
    """Write Parquet to a temporary file beside ``path`` and move it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.to_parquet(temporary, index=False)
    os.replace(temporary, path)


def publish_table(table: pd.DataFrame, root: Path) -> Path:
    """Merge a run's rows into its origin's table: its series' rows are replaced, others kept."""
    origins = table["forecast_origin"].unique()
    if len(origins) != 1:
        raise ValueError(f"a run publishes one forecast origin, got {len(origins)}")
    path = origin_path(root, origins[0])
    with _locked(path):
        current = pd.read_parquet(path) if path.exists() else table.iloc[0:0]
        kept = current[~current["unique_id"].isin(table["unique_id"].unique())]
        merged = table if kept.empty else pd.concat([kept, table], ignore_index=True)
        merged = merged.sort_values(KEY).reset_index(drop=True)
        if merged.duplicated(KEY).any():
            raise ValueError("forecast table would hold duplicate (unique_id, forecast_origin, ds) rows")
        write_atomic(merged, path)
    return path
