"""The forecast table in a SQL database (contract version 1, key unique_id, forecast_origin, ds).

A run's rows replace the rows of the series it covered for its origin, in one
transaction: readers see the table before the run or after it, never between.
The same transaction records the origin's publication in ``<table>_publications``:
with a database, this transaction is the commit point of a publish (the Parquet file
of the origin follows it, ``forecasting.publishing.table``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pandas as pd
import sqlalchemy as sa

from forecasting.data.contract import ID, MAX_ID_LENGTH, quantile_labels

_CHUNK = 500


def forecast_table(metadata: sa.MetaData, name: str, quantiles: Sequence[float]) -> sa.Table:
    """The table definition for the configured quantiles."""
    return sa.Table(
        name,
        metadata,
        sa.Column(ID, sa.String(MAX_ID_LENGTH), nullable=False),  # every id the contract allows
        sa.Column("forecast_origin", sa.DateTime, nullable=False),
        sa.Column("ds", sa.DateTime, nullable=False),
        sa.Column("horizon", sa.Integer, nullable=False),
        *[sa.Column(label, sa.Float, nullable=False) for label in quantile_labels(quantiles)],
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("schema_version", sa.Integer, nullable=False),
        sa.UniqueConstraint(ID, "forecast_origin", "ds", name=f"uq_{name}_key"),
        sa.Index(f"ix_{name}_origin", "forecast_origin"),
    )


def ensure_forecast_table(engine: sa.Engine, name: str, quantiles: Sequence[float]) -> sa.Table:
    """Create the table if absent; an existing table must have every configured quantile."""
    table = forecast_table(sa.MetaData(), name, quantiles)
    table.metadata.create_all(engine, checkfirst=True)
    existing = {c["name"] for c in sa.inspect(engine).get_columns(name)}
    missing = [c.name for c in table.columns if c.name not in existing]
    if missing:
        raise ValueError(f"SQL table {name!r} lacks the columns {missing}: migrate it before publishing")
    return table


def publications_table(metadata: sa.MetaData, name: str) -> sa.Table:
    """Which publication of each origin is committed: the marker Parquet readers can follow."""
    return sa.Table(
        f"{name}_publications",
        metadata,
        sa.Column("forecast_origin", sa.DateTime, primary_key=True),
        sa.Column("publication", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("published_at", sa.DateTime, nullable=False),
    )


def _replace_rows(connection: sa.Connection, table: sa.Table, frame: pd.DataFrame, series: Sequence[str],
                  origin: datetime) -> int:
    ids = sorted({str(s) for s in series} | set(frame[ID].astype(str)))
    selected = frame[[c.name for c in table.columns]]
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        connection.execute(table.delete().where(table.c.forecast_origin == origin, table.c.unique_id.in_(chunk)))
    for start in range(0, len(frame), _CHUNK):  # a chunk's records at a time: a dict per row is large
        connection.execute(table.insert(), selected.iloc[start : start + _CHUNK].to_dict("records"))
    return len(frame)


def publish_sql(
    frame: pd.DataFrame,
    engine: sa.Engine,
    name: str,
    quantiles: Sequence[float],
    series: Sequence[str],
    forecast_origin: pd.Timestamp,
) -> int:
    """Replace the rows of ``series`` at ``forecast_origin`` with ``frame``; return rows written."""
    table = ensure_forecast_table(engine, name, quantiles)
    with engine.begin() as connection:
        return _replace_rows(connection, table, frame, series, pd.Timestamp(forecast_origin).to_pydatetime())


class SqlCommitPoint:
    """The SQL table as the commit point of a publish (see ``forecasting.publishing.table``)."""

    def __init__(self, engine: sa.Engine, name: str, quantiles: Sequence[float]) -> None:
        self.engine, self.name, self.quantiles = engine, name, list(quantiles)
        self.table = ensure_forecast_table(engine, name, quantiles)
        self.marker = publications_table(sa.MetaData(), name)
        self.marker.metadata.create_all(engine, checkfirst=True)

    def committed(self, forecast_origin: pd.Timestamp) -> str | None:
        """The publication of the origin the database holds (None: none recorded)."""
        origin = pd.Timestamp(forecast_origin).to_pydatetime()
        with self.engine.connect() as connection:
            found = connection.execute(
                sa.select(self.marker.c.publication).where(self.marker.c.forecast_origin == origin)
            ).scalar_one_or_none()
        return str(found) if found is not None else None

    def rows(self, forecast_origin: pd.Timestamp) -> pd.DataFrame:
        """The origin's committed rows."""
        return read_forecasts(self.engine, self.name, forecast_origin)

    def commit(self, frame: pd.DataFrame, series: Sequence[str], forecast_origin: pd.Timestamp,
               publication: str, run_id: str) -> int:
        """Replace the rows of ``series`` and record ``publication`` as the origin's, in one transaction."""
        origin = pd.Timestamp(forecast_origin).to_pydatetime()
        with self.engine.begin() as connection:
            written = _replace_rows(connection, self.table, frame, series, origin)
            total = connection.execute(
                sa.select(sa.func.count()).select_from(self.table).where(self.table.c.forecast_origin == origin)
            ).scalar_one()
            connection.execute(self.marker.delete().where(self.marker.c.forecast_origin == origin))
            connection.execute(self.marker.insert(), [{
                "forecast_origin": origin, "publication": publication, "run_id": run_id, "rows": int(total),
                "published_at": datetime.now(UTC).replace(tzinfo=None),
            }])
        return written


def read_forecasts(engine: sa.Engine, name: str, forecast_origin: pd.Timestamp | None = None) -> pd.DataFrame:
    """The published rows (of one origin, or all)."""
    table = sa.Table(name, sa.MetaData(), autoload_with=engine)
    query = sa.select(table)
    if forecast_origin is not None:
        query = query.where(table.c.forecast_origin == pd.Timestamp(forecast_origin).to_pydatetime())
    with engine.connect() as connection:
        return pd.read_sql(query.order_by(table.c.unique_id, table.c.forecast_origin, table.c.ds), connection)
