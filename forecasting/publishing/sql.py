"""The forecast table in a SQL database (contract version 1, key unique_id, forecast_origin, ds).

A run's rows replace the rows of the series it covered for its origin, in one
transaction: readers see the table before the run or after it, never between.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import sqlalchemy as sa

from forecasting.data.contract import quantile_labels

_CHUNK = 500


def forecast_table(metadata: sa.MetaData, name: str, quantiles: Sequence[float]) -> sa.Table:
    """The table definition for the configured quantiles."""
    return sa.Table(
        name,
        metadata,
        sa.Column("unique_id", sa.String(255), nullable=False),
        sa.Column("forecast_origin", sa.DateTime, nullable=False),
        sa.Column("ds", sa.DateTime, nullable=False),
        sa.Column("horizon", sa.Integer, nullable=False),
        *[sa.Column(label, sa.Float, nullable=False) for label in quantile_labels(quantiles)],
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("schema_version", sa.Integer, nullable=False),
        sa.UniqueConstraint("unique_id", "forecast_origin", "ds", name=f"uq_{name}_key"),
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
    origin = pd.Timestamp(forecast_origin).to_pydatetime()
    ids = sorted({str(s) for s in series} | set(frame["unique_id"].astype(str)))
    records = frame[[c.name for c in table.columns]].to_dict("records")
    with engine.begin() as connection:
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            connection.execute(
                table.delete().where(table.c.forecast_origin == origin, table.c.unique_id.in_(chunk))
            )
        for start in range(0, len(records), _CHUNK):
            connection.execute(table.insert(), records[start : start + _CHUNK])
    return len(records)


def read_forecasts(engine: sa.Engine, name: str, forecast_origin: pd.Timestamp | None = None) -> pd.DataFrame:
    """The published rows (of one origin, or all)."""
    table = sa.Table(name, sa.MetaData(), autoload_with=engine)
    query = sa.select(table)
    if forecast_origin is not None:
        query = query.where(table.c.forecast_origin == pd.Timestamp(forecast_origin).to_pydatetime())
    with engine.connect() as connection:
        return pd.read_sql(query.order_by(table.c.unique_id, table.c.forecast_origin, table.c.ds), connection)
