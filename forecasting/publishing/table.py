"""The published forecast table (contract version 1): build it, publish it consistently.

Layout under the output root:

- ``forecasts/origin=<YYYY-MM-DD>.parquet``: the table of one forecast origin, the union of
  its runs, the newest run winning per series. Nothing else lives in ``forecasts/``, so
  the folder reads as one dataset (pandas, pyarrow, DuckDB ``forecasts/*.parquet``).
- ``.publishing/locks/`` and ``.publishing/staging/``: the origins' file locks and the
  versions being published.

A publish, under the origin's lock: (1) finish a publish of the origin that was interrupted
after its commit, drop staged files that never committed; (2) merge the run's rows into the
current table and stage the result; (3) commit: with a database, the SQL transaction
(``publishing.sql``), which records the publication id; (4) move the staged file into
place with ``os.replace``. Readers of either store see the old version or the new one,
never half of either; the Parquet file is never newer than the database, and carries its
publication id in its metadata (``forecasting.publication``).
"""

from __future__ import annotations

import fcntl
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from forecasting.data.contract import ID, SCHEMA_VERSION, forecast_table_columns, quantile_labels

KEY = [ID, "forecast_origin", "ds"]
PUBLICATION_KEY = b"forecasting.publication"


def build_forecast_table(
    forecasts: pd.DataFrame, forecast_origin: pd.Timestamp, run_id: str, quantiles: Sequence[float], model_version: str = ""
) -> pd.DataFrame:
    """Contract-v1 rows from the training layer's forecast frame."""
    columns = forecast_table_columns(quantiles)
    if forecasts.empty:  # nothing to publish (every series ended or quarantined): typed, no rows
        forecasts = pd.DataFrame({ID: pd.Series(dtype=object), "ds": pd.Series(dtype="datetime64[ns]"),
                                  "horizon": pd.Series(dtype="int64"), "model": pd.Series(dtype=object),
                                  "status": pd.Series(dtype=object),
                                  **{label: pd.Series(dtype="float64") for label in quantile_labels(quantiles)}})
    table = forecasts.copy()
    table["forecast_origin"] = pd.Timestamp(forecast_origin).as_unit("ns")
    table["run_id"] = run_id
    table["model_version"] = model_version
    table["schema_version"] = SCHEMA_VERSION
    table[ID] = table[ID].astype(str)
    table["horizon"] = table["horizon"].astype("int64")
    for label in quantile_labels(quantiles):
        table[label] = table[label].astype("float64")
    return table[columns].sort_values([ID, "ds"]).reset_index(drop=True)


def origin_path(root: Path, forecast_origin: pd.Timestamp) -> Path:
    return Path(root) / "forecasts" / f"origin={pd.Timestamp(forecast_origin):%Y-%m-%d}.parquet"


def _work_folder(root: Path, kind: str) -> Path:
    """Locks and staged versions live beside the dataset folder, never in it."""
    folder = Path(root) / ".publishing" / kind
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def _locked(root: Path, path: Path) -> Iterator[None]:
    with open(_work_folder(root, "locks") / path.with_suffix(".lock").name, "w") as handle:
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


def concat_parquet_atomic(parts: Sequence[Path | pd.DataFrame], path: Path) -> bool:
    """The parts (Parquet files or frames) one below the other into one Parquet file, atomically,
    holding one part in memory at a time. Parts without rows are left out; their columns are
    unified (a column missing from a part is null there). Returns False, writing nothing,
    when no part has a row."""
    tables = [_part_of(part) for part in parts]  # files stay unread until written: metadata only
    with_rows = [t for t in tables if t.num_rows > 0]
    if not with_rows:
        return False
    schema = pa.unify_schemas([t.schema for t in with_rows], promote_options="permissive")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with pq.ParquetWriter(temporary, schema) as writer:
        for table in with_rows:
            writer.write_table(_conformed(table.read(), schema))
    os.replace(temporary, path)
    return True


class _Part:
    """A part of ``concat_parquet_atomic``: its row count and schema now, its rows when written."""

    def __init__(self, num_rows: int, schema: pa.Schema, read: Callable[[], pa.Table]) -> None:
        self.num_rows, self.schema, self.read = num_rows, schema, read


def _part_of(part: Path | pd.DataFrame) -> _Part:
    if isinstance(part, pd.DataFrame):
        table = pa.Table.from_pandas(part, preserve_index=False)
        return _Part(table.num_rows, table.schema, lambda: table)
    meta = pq.read_metadata(part)
    return _Part(meta.num_rows, meta.schema.to_arrow_schema(), lambda: pq.read_table(part))


def _conformed(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with ``schema``'s columns in its order and types (nulls where it has no such column)."""
    columns = [table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
               for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def _write_publication(frame: pd.DataFrame, path: Path, publication: str) -> None:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    metadata = {**(table.schema.metadata or {}), PUBLICATION_KEY: publication.encode()}
    pq.write_table(table.replace_schema_metadata(metadata), path)


def publication_of(path: Path) -> str | None:
    """The publication id a published file carries (None: none, or no file)."""
    if not path.exists():
        return None
    metadata = pq.read_schema(path).metadata or {}
    found = metadata.get(PUBLICATION_KEY)
    return found.decode() if found else None


class CommitPoint(Protocol):
    """Where a publish commits before the Parquet file follows (the SQL table, ``publishing.sql``)."""

    def committed(self, forecast_origin: pd.Timestamp) -> str | None: ...

    def rows(self, forecast_origin: pd.Timestamp) -> pd.DataFrame: ...

    def commit(self, frame: pd.DataFrame, series: Sequence[str], forecast_origin: pd.Timestamp,
               publication: str, run_id: str) -> int: ...


@dataclass(frozen=True)
class Publication:
    """What a publish left: the origin's file, its publication id, and the merged table."""

    path: Path
    publication: str
    table: pd.DataFrame
    sql_rows: int | None = None


def _staged(root: Path, path: Path, publication: str) -> Path:
    return _work_folder(root, "staging") / f"{path.stem}.{publication}.parquet"


def _recover(root: Path, path: Path, origin: pd.Timestamp, commit_point: CommitPoint | None) -> None:
    """Finish a publish that was interrupted after its commit; drop what never committed.

    Runs under the origin's lock, so nothing else is writing this origin's files.
    """
    committed = commit_point.committed(origin) if commit_point is not None else None
    if committed is not None and publication_of(path) != committed:
        staged = _staged(root, path, committed)
        if staged.exists():
            os.replace(staged, path)  # roll forward: the database already holds this version
        else:  # the staged file is gone: the commit point's rows are the truth
            rows = commit_point.rows(origin) if commit_point is not None else pd.DataFrame()
            _write_publication(rows.sort_values(KEY).reset_index(drop=True), path, committed)
    for leftover in _work_folder(root, "staging").glob(f"{path.stem}.*.parquet"):
        leftover.unlink(missing_ok=True)
    for leftover in path.parent.glob(f".{path.name}.*.tmp"):  # killed writers of an earlier layout
        leftover.unlink(missing_ok=True)
    path.with_suffix(".lock").unlink(missing_ok=True)  # the earlier layout's lock, in the dataset folder


def recover_publications(root: Path, commit_point: CommitPoint | None = None) -> list[Path]:
    """Finish or drop every interrupted publish under ``root`` (each origin under its lock)."""
    staging = Path(root) / ".publishing" / "staging"
    stems = sorted({p.name.split(".")[0] for p in staging.glob("origin=*.parquet")}) if staging.is_dir() else []
    recovered = []
    for stem in stems:
        path = Path(root) / "forecasts" / f"{stem}.parquet"
        with _locked(root, path):
            _recover(root, path, pd.Timestamp(stem.removeprefix("origin=")), commit_point)
        recovered.append(path)
    return recovered


def publish_table(
    table: pd.DataFrame,
    root: Path,
    series: Sequence[str] | None = None,
    forecast_origin: pd.Timestamp | None = None,
    commit_point: CommitPoint | None = None,
) -> Publication:
    """Merge a run's rows into its origin's table: its series' rows are replaced, others kept.

    ``series`` are the ids whose rows the run replaces (default: the ids in ``table``); rows
    of those it does not publish (ended series) are removed. Rows of any other series are
    kept. ``forecast_origin`` is needed only when ``table`` is empty. With a ``commit_point``
    (the SQL table), the publish commits there first and the Parquet file follows; a publish
    interrupted between the two is finished by the next publish of any origin's writer here.
    """
    origins = table["forecast_origin"].unique()
    if len(origins) == 0 and forecast_origin is not None:
        origins = [pd.Timestamp(forecast_origin)]
    if len(origins) != 1:
        raise ValueError(f"a run publishes one forecast origin, got {len(origins)}")
    origin = pd.Timestamp(origins[0])
    replaced = set(table[ID].astype(str)) | {str(s) for s in (series if series is not None else ())}
    path = origin_path(root, origin)
    path.parent.mkdir(parents=True, exist_ok=True)
    publication = uuid.uuid4().hex[:16]
    with _locked(root, path):
        _recover(root, path, origin, commit_point)
        current = pd.read_parquet(path) if path.exists() else table.iloc[0:0]
        kept = current[~current[ID].isin(replaced)]
        merged = kept if table.empty else table if kept.empty else pd.concat([kept, table], ignore_index=True)
        merged = merged.sort_values(KEY).reset_index(drop=True)
        if merged.duplicated(KEY).any():
            raise ValueError("forecast table would hold duplicate (unique_id, forecast_origin, ds) rows")
        staged = _staged(root, path, publication)
        _write_publication(merged, staged, publication)
        sql_rows = None
        try:
            if commit_point is not None:  # the commit point: after it, this version is the published one
                run_id = str(table["run_id"].iloc[0]) if len(table) else ""
                sql_rows = commit_point.commit(table, sorted(replaced), origin, publication, run_id)
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        os.replace(staged, path)
    return Publication(path, publication, merged, sql_rows)
