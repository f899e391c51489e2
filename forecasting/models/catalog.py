"""Find candidate classes by name: the built-ins plus plug-ins from entry points.

A plug-in is any installed distribution with an entry point in the group
``forecasting.models`` (name = the model's name in config, value = its class).
A plug-in that fails to load is kept out of the catalog with its error, so one
broken package never hides the others; naming it in config is then an error.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from forecasting.errors import SettingsError
from forecasting.models.base import ForecastModel

ENTRY_POINT_GROUP = "forecasting.models"
logger = logging.getLogger(__name__)
_BUILTIN_MODULE = "forecasting.models.statsforecast_models"


class UnknownModelError(KeyError, SettingsError):
    """A configured model name is neither built in nor an installed plug-in."""

    def __str__(self) -> str:
        return str(self.args[0])


class PluginLoadError(UnknownModelError):
    """A configured plug-in is installed but its entry point cannot be loaded."""


@dataclass(frozen=True)
class PluginInfo:
    """An installed plug-in: where it comes from and who owns it."""

    name: str
    model_class: type[ForecastModel] | None  # None when it failed to load
    distribution: str
    version: str
    owner: str
    target: str  # the entry point's value, "module:Class"
    error: str = ""  # why it failed to load


def _builtin_models() -> dict[str, type[ForecastModel]]:
    # Imported here: statsforecast takes seconds to import, and listing plug-ins needs none of it.
    from forecasting.models.lightgbm_global import GLOBAL_MODELS
    from forecasting.models.statsforecast_models import BUILTIN_MODELS

    return {**BUILTIN_MODELS, **GLOBAL_MODELS}


def builtin_names() -> list[str]:
    """Names of the built-in models."""
    return list(_builtin_models())


def is_builtin(model_class: type) -> bool:
    """True for the framework's own models (they run in-process, unisolated).

    Built-in classes exist only once their module is imported, so this never imports it.
    """
    from forecasting.models.lightgbm_global import (
        GLOBAL_MODELS,  # cheap: mlforecast is imported on first fit
    )

    module = sys.modules.get(_BUILTIN_MODULE)
    local = module is not None and model_class in module.BUILTIN_MODELS.values()
    return local or model_class in GLOBAL_MODELS.values()


def _owner(entry_point: EntryPoint, model_class: type | None) -> str:
    declared = getattr(model_class, "owner", None)
    if isinstance(declared, str) and declared:
        return declared
    metadata = entry_point.dist.metadata if entry_point.dist else None
    if metadata is None:
        return ""
    author = metadata.get("Author") or metadata.get("Author-email") or ""
    return str(author)


def _load(entry_point: EntryPoint) -> tuple[type[ForecastModel] | None, str]:
    try:
        loaded = entry_point.load()
    except Exception as exc:  # a broken plug-in must not hide the others
        return None, f"{type(exc).__name__}: {exc}"
    if not (isinstance(loaded, type) and issubclass(loaded, ForecastModel)):
        return None, f"{entry_point.value} is not a subclass of forecasting.models.base.ForecastModel"
    return loaded, ""


@cache
def installed_plugins() -> dict[str, PluginInfo]:
    """Every entry point of the group, loaded (or with its load error), by name.

    A built-in of the same name wins over a plug-in (see ``available_models``).
    """
    plugins: dict[str, PluginInfo] = {}
    for entry_point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if entry_point.name in plugins:
            continue
        model_class, error = _load(entry_point)
        dist = entry_point.dist
        plugins[entry_point.name] = PluginInfo(
            name=entry_point.name,
            model_class=model_class,
            distribution=dist.name if dist else "",
            version=dist.version if dist else "",
            owner=_owner(entry_point, model_class),
            target=entry_point.value,
            error=error,
        )
    return plugins


@cache
def available_models() -> dict[str, type[ForecastModel]]:
    """Built-in models and every installed plug-in that loads, by name (built-ins win a clash)."""
    models: dict[str, type[ForecastModel]] = dict(_builtin_models())
    for name, info in installed_plugins().items():
        if name in models:
            logger.warning("plug-in %s (%s) is ignored: a built-in model has that name", name, info.distribution)
        elif info.model_class is not None:
            models[name] = info.model_class
    return models


def model_class(name: str) -> type[ForecastModel]:
    """The class registered under ``name``; a clear error when there is none."""
    models = available_models()
    if name in models:
        return models[name]
    broken = installed_plugins().get(name)
    if broken is not None:
        raise PluginLoadError(
            f"plug-in {name!r} ({broken.distribution} {broken.version}) cannot be loaded: {broken.error}"
        )
    raise UnknownModelError(f"unknown model {name!r}; available: {', '.join(sorted(models))}")


def instantiate(
    model_class: type[ForecastModel],
    params: dict[str, Any],
    season_length: int,
    seasonalities: tuple[int, ...] = (),
    freq: str | None = None,
) -> ForecastModel:
    """An instance with ``params``; ``season_length`` (and ``freq``, if given) is filled in where the model takes one.

    A model tagged ``multiple_seasonalities`` gets every cycle of ``seasonalities`` (or the
    season length alone) instead. Raises ``InvalidParameterError`` for a parameter the class's
    ``param_constraints`` refuse.
    """
    from forecasting.models.params import check_params

    arguments = dict(params)
    if "season_length" in model_class._param_names() and "season_length" not in arguments:
        multiple = model_class.get_tag("multiple_seasonalities")
        arguments["season_length"] = list(seasonalities or (season_length,)) if multiple else season_length
    if freq is not None and "freq" in model_class._param_names() and "freq" not in arguments:
        arguments["freq"] = freq
    model = model_class(**arguments)
    check_params(model)
    return model


def build_model(
    name: str, params: dict[str, Any], season_length: int, seasonalities: tuple[int, ...] = ()
) -> ForecastModel:
    """Instantiate a candidate by name; ``season_length`` is filled in where the model takes one."""
    return instantiate(model_class(name), params, season_length, seasonalities)
