"""The input snapshot of one as-of date: a file (path or glob template) or a SQL query.

A scheduled run reads the history as it was for its as-of date, never "whatever is
latest": the template names the snapshot file of that date, or the query takes the
date as its ``:as_of`` parameter.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from forecasting.data.database import engine_for
from forecasting.data.io import DataReadError, map_columns, read_history


def snapshot_paths(path_template: str, as_of: pd.Timestamp) -> list[Path]:
    """The files the template names for ``as_of`` (sorted); an error when none exists."""
    pattern = path_template.format(as_of=pd.Timestamp(as_of))
    matches = sorted(Path(p) for p in glob.glob(pattern))
    if not matches:
        raise DataReadError(f"no input snapshot for as_of {pd.Timestamp(as_of):%Y-%m-%d}: nothing matches {pattern}")
    return matches


def read_file_snapshot(path_template: str, as_of: pd.Timestamp, id_col: str, time_col: str, target_col: str,
                       date_format: str | None = None) -> pd.DataFrame:
    frames = [read_history(p, id_col, time_col, target_col, date_format) for p in snapshot_paths(path_template, as_of)]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def read_query_snapshot(query: str, url_env: str, as_of: pd.Timestamp, id_col: str, time_col: str, target_col: str,
                        date_format: str | None = None) -> pd.DataFrame:
    """Rows of ``query`` run with ``:as_of``; the database URL comes from the variable ``url_env``."""
    url = os.environ.get(url_env)
    if not url:
        raise DataReadError(f"source.query is set but the environment variable {url_env} (the database URL) is not")
    try:
        with engine_for(url).connect() as connection:
            frame = pd.read_sql(sa.text(query), connection, params={"as_of": pd.Timestamp(as_of).to_pydatetime()})
    except sa.exc.SQLAlchemyError as exc:
        raise DataReadError(f"source.query failed for as_of {pd.Timestamp(as_of):%Y-%m-%d}: {exc}") from exc
    return map_columns(frame, "source.query", id_col, time_col, target_col, date_format)
