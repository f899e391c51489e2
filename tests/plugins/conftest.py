"""The fixture plug-ins (tests/plugins/fixtures): discoverable only while a test asks for them."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from forecasting.models.catalog import available_models, installed_plugins

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _forget_plugins() -> None:
    available_models.cache_clear()
    installed_plugins.cache_clear()


@pytest.fixture
def fixture_plugins() -> Iterator[Path]:
    """Put the fixture distribution (Misbehaving, BreaksContract, Unloadable) on sys.path."""
    sys.path.insert(0, str(FIXTURES))
    _forget_plugins()
    try:
        yield FIXTURES
    finally:
        sys.path.remove(str(FIXTURES))
        _forget_plugins()
