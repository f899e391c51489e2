"""Every error family ends a command with its own exit code, whatever module raises it."""

from __future__ import annotations

import pytest

from forecasting.activation.verdicts import PluginNotConformantError
from forecasting.config import ConfigError
from forecasting.data.io import ColumnMappingError, DataReadError
from forecasting.data.validation import CircuitBreakerError, DataSchemaError
from forecasting.errors import (
    EXIT_CIRCUIT_BREAKER,
    EXIT_CONFIG,
    EXIT_DATA,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    exit_code,
)
from forecasting.models.catalog import PluginLoadError, UnknownModelError
from forecasting.registry.operator import RegistryActionError


@pytest.mark.parametrize(("error", "code"), [
    (ConfigError("bad setting"), EXIT_CONFIG),
    (PluginNotConformantError("failed the kit"), EXIT_CONFIG),
    (RegistryActionError("no such version"), EXIT_CONFIG),
    (UnknownModelError("unknown model"), EXIT_CONFIG),
    (PluginLoadError("cannot be loaded"), EXIT_CONFIG),
    (DataReadError("no such file"), EXIT_DATA),
    (ColumnMappingError("no column y"), EXIT_DATA),
    (DataSchemaError("y is not numeric"), EXIT_DATA),
    (CircuitBreakerError("too many quarantined"), EXIT_CIRCUIT_BREAKER),
    (RuntimeError("anything else"), EXIT_FAILURE),
    (ValueError("a plain ValueError"), EXIT_FAILURE),
    (KeyError("a plain KeyError"), EXIT_FAILURE),
    (KeyboardInterrupt(), EXIT_INTERRUPTED),
], ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value))
def test_each_error_family_has_its_exit_code(error, code):
    assert exit_code(error) == code


def test_the_families_keep_their_builtin_bases():
    assert isinstance(ConfigError("x"), ValueError) and isinstance(DataReadError("x"), OSError)
    assert isinstance(DataSchemaError("x"), ValueError) and isinstance(CircuitBreakerError("x"), RuntimeError)
    assert isinstance(UnknownModelError("x"), KeyError)
