"""The error families and their exit codes: the one place that decides how a command ends on an error.

An error the platform raises on purpose belongs to a family below and keeps the built-in
exception it always derived from (a ``ConfigError`` is still a ``ValueError``, a
``DataReadError`` an ``OSError``), so callers that catch the built-in keep working. The
command line asks an error for its code (``exit_code``) and never looks at its class.

=====================  ====  ==========================================================
family                 code  members
=====================  ====  ==========================================================
SettingsError          2     ``ConfigError`` (a bad setting, a frequency that does not fit
                             the dates) with ``PluginNotConformantError`` (a plug-in that
                             fails the conformance kit) and ``RegistryActionError`` (an
                             operator's registry action that cannot be done);
                             ``UnknownModelError`` and ``PluginLoadError`` (a model name)
InputError             3     ``DataReadError`` and ``ColumnMappingError`` (the input file
                             cannot be read or mapped), ``DataSchemaError`` (broken as a
                             whole)
UntrustedRunError      4     ``CircuitBreakerError``: too large a share of the series
                             without a publishable forecast
anything else          1     a failure of the run itself
=====================  ====  ==========================================================

A command-line usage error (a bad flag) ends with ``EXIT_CONFIG`` too, and Ctrl-C with
``EXIT_INTERRUPTED``. This module imports nothing from the package: every layer may use it.
"""

from __future__ import annotations

from typing import ClassVar

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2
EXIT_DATA = 3
EXIT_CIRCUIT_BREAKER = 4
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT), as shells report it


class ForecastingError(Exception):
    """An error the platform raises on purpose; ``exit_code`` says how a command ends with it."""

    exit_code: ClassVar[int] = EXIT_FAILURE


class SettingsError(ForecastingError):
    """Something the configuration (or an operator) asked for cannot be done as asked."""

    exit_code = EXIT_CONFIG


class InputError(ForecastingError):
    """The input as a whole cannot be read, mapped or trusted to follow the data contract."""

    exit_code = EXIT_DATA


class UntrustedRunError(ForecastingError):
    """Too large a share of the series has no publishable forecast to trust the run."""

    exit_code = EXIT_CIRCUIT_BREAKER


def exit_code(exc: BaseException) -> int:
    """The exit code a command ends with when ``exc`` stops it: the error's own, by its family."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, ForecastingError):
        return exc.exit_code
    return EXIT_FAILURE
