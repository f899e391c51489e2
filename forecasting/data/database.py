"""The SQL database of a deployment: its URL comes from the environment, never from a file."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa

from forecasting.config import Settings


def database_url(settings: Settings) -> str:
    """The URL in ``database.url_env``, else a SQLite file under the output root."""
    url = os.environ.get(settings.database.url_env)
    if url:
        return url
    path = Path(settings.output.root).resolve() / "forecasting.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


@lru_cache(maxsize=8)
def _engine(url: str) -> sa.Engine:
    return sa.create_engine(url, pool_pre_ping=True)


def engine_for(url: str) -> sa.Engine:
    """One engine (connection pool) per URL and process."""
    return _engine(url)


def database_engine(settings: Settings) -> sa.Engine:
    return engine_for(database_url(settings))
