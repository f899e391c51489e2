"""Find candidate classes by name: the built-ins plus plug-ins from entry points."""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import Any

from forecasting.models.base import ForecastModel
from forecasting.models.statsforecast_models import BUILTIN_MODELS

ENTRY_POINT_GROUP = "forecasting.models"


class UnknownModelError(KeyError):
    """A configured model name is neither built in nor an installed plug-in."""

    def __str__(self) -> str:
        return str(self.args[0])


@cache
def available_models() -> dict[str, type[ForecastModel]]:
    """Built-in models and every installed plug-in, by name."""
    models: dict[str, type[ForecastModel]] = dict(BUILTIN_MODELS)
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        models.setdefault(entry_point.name, entry_point.load())
    return models


def build_model(name: str, params: dict[str, Any], season_length: int) -> ForecastModel:
    """Instantiate a candidate; ``season_length`` is filled in where the model takes one."""
    models = available_models()
    if name not in models:
        raise UnknownModelError(
            f"unknown model {name!r}; available: {', '.join(sorted(models))}"
        )
    model_class = models[name]
    arguments = dict(params)
    if "season_length" in model_class._param_names() and "season_length" not in arguments:
        arguments["season_length"] = season_length
    return model_class(**arguments)
