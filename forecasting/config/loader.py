"""Load settings: embedded defaults < YAML file < environment < explicit overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_settings import EnvSettingsSource

from forecasting.config.settings import Settings
from forecasting.errors import SettingsError


class ConfigError(SettingsError, ValueError):
    """A configuration value is missing, unknown or invalid; the message names the key."""


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` updated by ``override``, merging nested mappings key by key."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a YAML settings file; an empty file means no overrides."""
    try:
        content = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections, got {type(content).__name__}")
    return content


def environment_overrides() -> dict[str, Any]:
    """Settings given as ``FORECASTING__SECTION__KEY=value`` environment variables."""
    return EnvSettingsSource(Settings)()


def load_settings(config_file: Path | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Build the run's settings; raise ConfigError naming the offending key."""
    values: dict[str, Any] = read_config_file(config_file) if config_file else {}
    values = deep_merge(values, environment_overrides())
    values = deep_merge(values, overrides or {})
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    """One readable line per problem: ``section.key: message (got value)``."""
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"])
        got = error.get("input")
        shown = "" if isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"{key}: {error['msg']}{shown}")
    return "invalid configuration: " + "; ".join(lines)
