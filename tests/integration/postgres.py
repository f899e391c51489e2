"""A throw-away PostgreSQL database on the build machine's server, or a clear skip.

FORECASTING_TEST_POSTGRES_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/test)
names a server and a database to connect to; each fixture creates its own database there
and drops it afterwards. With FORECASTING_REQUIRE_POSTGRES=1 (CI) a missing server fails.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def admin_url() -> sa.URL:
    return sa.make_url(os.environ.get("FORECASTING_TEST_POSTGRES_URL", DEFAULT_URL))


def _unavailable(reason: str) -> None:
    if os.environ.get("FORECASTING_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL is required (FORECASTING_REQUIRE_POSTGRES=1): {reason}")
    pytest.skip(f"no PostgreSQL server answers: {reason} (set FORECASTING_TEST_POSTGRES_URL)")


def temporary_database() -> Iterator[str]:
    """Create a database on the server, yield its URL, drop it."""
    url = admin_url()
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    name = f"forecasting_test_{uuid.uuid4().hex[:10]}"
    try:
        with engine.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        engine.dispose()
        _unavailable(f"{url.render_as_string(hide_password=True)}: {str(exc.orig).strip().splitlines()[0]}")
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()
