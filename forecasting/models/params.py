"""Model parameters checked when the configuration is loaded, not discovered in a backtest.

A model class declares ``param_constraints`` (name -> :class:`Constraint`); the built-in
adapters derive theirs from statsforecast's defaults. :func:`check_params` checks a model's
current parameters, :func:`check_model_settings` every configured candidate and fallback.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from forecasting.config import ConfigError, Settings
from forecasting.models.base import ForecastModel


class InvalidParameterError(ValueError):
    """A model parameter is outside what the model accepts; the message names it."""


@dataclass(frozen=True)
class Constraint:
    """What one parameter accepts: a kind (int, real, bool, str) and an optional range."""

    kind: str  # "int", "real", "bool", "str", "ints" (an int or a list of ints, e.g. MSTL's season lengths)
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself is excluded
    none_ok: bool = True

    def problem(self, value: Any) -> str:
        """Why ``value`` is not accepted ("" when it is)."""
        if value is None:
            return "" if self.none_ok else "must be set"
        values = list(value) if self.kind == "ints" and isinstance(value, list | tuple) else [value]
        for item in values:
            found = self._one(item)
            if found:
                return found
        return ""

    def _one(self, value: Any) -> str:
        integer = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        if self.kind in ("int", "ints") and not integer:
            return f"must be an integer{self._range()}, got {value!r}"
        if self.kind == "real" and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
            return f"must be a number{self._range()}, got {value!r}"
        if self.kind == "bool" and not isinstance(value, bool):
            return f"must be true or false, got {value!r}"
        if self.kind == "str" and not isinstance(value, str):
            return f"must be text, got {value!r}"
        if self.kind in ("int", "ints", "real"):
            too_low = self.low is not None and (value <= self.low if self.low_open else value < self.low)
            if too_low or (self.high is not None and value > self.high):
                return f"must be {'an integer' if self.kind != 'real' else 'a number'}{self._range()}, got {value!r}"
        return ""

    def _range(self) -> str:
        if self.low is not None and self.high is not None:
            return f" in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}]"
        if self.low is not None:
            return f" {'>' if self.low_open else '>='} {self.low:g}"
        return ""


def constraints_of(model_class: type[ForecastModel]) -> Mapping[str, Constraint]:
    return getattr(model_class, "param_constraints", {}) or {}


def check_params(model: ForecastModel) -> None:
    """Raise :class:`InvalidParameterError` naming every parameter of ``model`` it does not accept."""
    params = model.get_params()
    problems = [f"{name} {constraint.problem(params[name])}"
                for name, constraint in constraints_of(type(model)).items()
                if name in params and constraint.problem(params[name])]
    if problems:
        raise InvalidParameterError("; ".join(problems))


def check_model_settings(settings: Settings) -> None:
    """Build every configured model and check its parameters; a ConfigError names the setting."""
    from forecasting.models.catalog import UnknownModelError, build_model

    entries = [(f"models.candidates[{i}] ({c.label})", c.name, c.params) for i, c in enumerate(settings.models.candidates)]
    entries += [(f"models.fallback[{i}] ({name})", name, {}) for i, name in enumerate(settings.models.fallback)]
    problems = []
    for where, name, params in entries:
        try:
            build_model(name, params, settings.season_length)
        except UnknownModelError:
            raise
        except (InvalidParameterError, TypeError, ValueError) as exc:
            problems.append(f"{where}: {exc}")
    if problems:
        raise ConfigError("invalid model parameters: " + "; ".join(problems))
