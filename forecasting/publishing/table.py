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
    columns = forecast_table_columns(quantiles)
    if forecasts.empty:  # nothing to publish (every series ended or quarantined): typed, no rows
        forecasts = pd.DataFrame({"unique_id": pd.Series(dtype=object), "ds": pd.Series(dtype="datetime64[ns]"),
                                  "horizon": pd.Series(dtype="int64"), "model": pd.Series(dtype=object),
                                  "status": pd.Series(dtype=object),
                                  **{label: pd.Series(dtype="float64") for label in quantile_labels(quantiles)}})
    table = forecasts.copy()
    table["forecast_origin"] = pd.Timestamp(forecast_origin).as_unit("ns")
    table["run_id"] = run_id
    table["model_version"] = model_version
    table["schema_version"] = SCHEMA_VERSION
    table["unique_id"] = table["unique_id"].astype(str)
    table["horizon"] = table["horizon"].astype("int64")
    for label in quantile_labels(quantiles):
        table[label] = table[label].astype("float64")
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


def publish_table(
    table: pd.DataFrame,
    root: Path,
    series: Sequence[str] | None = None,
    forecast_origin: pd.Timestamp | None = None,
) -> Path:
    """Merge a run's rows into its origin's table: its series' rows are replaced, others kept.

    ``series`` are the ids the run covered (default: the ids in ``table``); rows of those that
    the run does not publish (now ended or quarantined) are removed, so no stale forecast of an
    earlier run survives. ``forecast_origin`` is needed only when ``table`` is empty.
    """
    origins = table["forecast_origin"].unique()
    if len(origins) == 0 and forecast_origin is not None:
        origins = [pd.Timestamp(forecast_origin)]
    if len(origins) != 1:
        raise ValueError(f"a run publishes one forecast origin, got {len(origins)}")
    replaced = set(table["unique_id"].astype(str)) | {str(s) for s in (series if series is not None else ())}
    path = origin_path(root, origins[0])
    with _locked(path):
        current = pd.read_parquet(path) if path.exists() else table.iloc[0:0]
        kept = current[~current["unique_id"].isin(replaced)]
        merged = kept if table.empty else table if kept.empty else pd.concat([kept, table], ignore_index=True)
        merged = merged.sort_values(KEY).reset_index(drop=True)
        if merged.duplicated(KEY).any():
            raise ValueError("forecast table would hold duplicate (unique_id, forecast_origin, ds) rows")
        write_atomic(merged, path)
    return path
