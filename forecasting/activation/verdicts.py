"""A plug-in is activated only with a passing conformance verdict, cached per plug-in version.

``activate_plugins`` is the step a run takes before it builds a training plan (and every
worker before it builds its own): the plan itself never checks anything.

The kit runs the plug-in's code in sandboxed child processes under the plug-in's
limits (``plugins.timeout_seconds`` per check, ``plugins.memory_limit_mb``), never in
the calling process: a plug-in that crashes, hangs or exits fails its checks.
It takes a few seconds, so it runs once per plug-in version, not per run: the verdict is stored under ``<output root>/plugins/`` (or
``plugins.verdict_cache``), keyed by the plug-in's name, distribution version, a
digest of its source files and a digest of the kit itself. An edited editable
install, a new release or a changed kit therefore gets a fresh verdict; parallel
workers building the same plan wait on a file lock instead of repeating the kit.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
from dataclasses import asdict
from functools import cache
from pathlib import Path
from typing import Any

from forecasting import __version__
from forecasting.activation import conformance as kit
from forecasting.activation import kit_child
from forecasting.config import ConfigError, Settings
from forecasting.models import conformance as model_checks
from forecasting.models import sandbox, sandbox_supervisor
from forecasting.models.catalog import PluginInfo, installed_plugins, is_builtin, model_class
from forecasting.models.conformance import CheckResult
from forecasting.training.plan import IsolationLimits

logger = logging.getLogger(__name__)


class PluginNotConformantError(ConfigError):
    """A configured plug-in failed the conformance kit, so it cannot be activated."""


def verdict_folder(settings: Settings) -> Path:
    return Path(settings.plugins.verdict_cache or Path(settings.output.root) / "plugins")


def _digest_files(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def source_digest(module_name: str) -> str:
    """Digest of the Python files of the top-level package that holds ``module_name``."""
    import importlib.util

    spec = importlib.util.find_spec(module_name.split(".")[0])
    if spec is None or not spec.origin:
        return "unknown"
    origin = Path(spec.origin)
    files = sorted(origin.parent.rglob("*.py")) if spec.submodule_search_locations else [origin]
    return _digest_files(files)


@cache
def kit_digest() -> str:
    files = [model_checks.__file__, kit.__file__, kit_child.__file__, sandbox.__file__, sandbox_supervisor.__file__]
    return _digest_files([Path(f) for f in files])


def kit_limits(name: str, settings: Settings) -> IsolationLimits:
    """The limits the kit runs plug-in ``name`` under: the same as training's."""
    timeout, memory = settings.plugins.limits_for(name)
    return IsolationLimits(timeout, memory)


def run_kit(name: str, settings: Settings) -> list[CheckResult]:
    """The kit on model ``name``: a plug-in in sandboxed children, a built-in in this process."""
    found = model_class(name)
    if is_builtin(found):
        return kit.check_model(found)
    return kit.check_sandboxed(name, kit_limits(name, settings))


def verdict_key(info: PluginInfo) -> str:
    """Identifies what was checked: the plug-in's version and code, and the kit's."""
    assert info.model_class is not None
    parts = [info.name, info.distribution, info.version, source_digest(info.model_class.__module__),
             kit.KIT_VERSION, __version__, kit_digest()]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]


def _read(path: Path) -> list[CheckResult] | None:
    try:
        return [CheckResult(**item) for item in json.loads(path.read_text())["results"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def store_verdict(folder: Path, info: PluginInfo, results: list[CheckResult]) -> None:
    """Write a verdict atomically (``forecasting plugins check`` refreshes it this way)."""
    path = folder / f"{info.name}-{verdict_key(info)}.json"
    folder.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    content = {"plugin": info.name, "distribution": info.distribution, "version": info.version,
               "results": [asdict(r) for r in results]}
    temporary.write_text(json.dumps(content, indent=2))
    temporary.replace(path)


def verdict(name: str, settings: Settings) -> list[CheckResult]:
    """The kit's results for plug-in ``name``: from the cache, or computed once and cached."""
    model_class(name)  # a clear error for an unknown or broken plug-in
    folder = verdict_folder(settings)
    info = installed_plugins()[name]
    assert info.model_class is not None
    path = folder / f"{name}-{verdict_key(info)}.json"
    cached = _read(path)
    if cached is not None:
        return cached
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = open(folder / f".{name}.lock", "w")  # noqa: SIM115 - held for the block below
    except OSError as exc:
        logger.warning("cannot cache conformance verdicts in %s (%s): checking %s in memory", folder, exc, name)
        return run_kit(name, settings)
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be checking the same plug-in right now
        cached = _read(path)
        if cached is not None:
            return cached
        results = run_kit(name, settings)
        store_verdict(folder, info, results)
        return results


def ensure_conformant(name: str, settings: Settings) -> None:
    """Raise PluginNotConformantError (a configuration error) unless plug-in ``name`` passes the kit."""
    failed = [r for r in verdict(name, settings) if r.status == "fail"]
    if failed:
        info = installed_plugins()[name]
        reasons = "; ".join(f"{r.check} ({r.reason[:160]})" for r in failed)
        raise PluginNotConformantError(
            f"plug-in {name!r} ({info.distribution} {info.version}) failed the conformance kit and cannot be "
            f"activated: {len(failed)} failed check(s): {reasons}. Run `forecasting plugins check {name}` for details."
        )


def configured_plugins(settings: Settings) -> list[str]:
    """The installed plug-ins the configuration names (candidates and fallbacks), in order."""
    names = [c.name for c in settings.models.candidates] + list(settings.models.fallback)
    installed = installed_plugins()
    return list(dict.fromkeys(name for name in names if name in installed))


def activate_plugins(settings: Settings) -> list[str]:
    """Check every configured plug-in before a run starts (cached verdicts, else the sandboxed kit).

    Raises PluginNotConformantError, a configuration error, for the first that fails.
    """
    names = configured_plugins(settings)
    for name in names:
        ensure_conformant(name, settings)
    return names


def cached_status(info: PluginInfo, folder: Path) -> str:
    """The cached verdict of an installed plug-in, without running the kit."""
    if info.model_class is None:
        return f"cannot load: {info.error}"
    results = _read(folder / f"{info.name}-{verdict_key(info)}.json")
    if results is None:
        return "not checked yet"
    failed = [r.check for r in results if r.status == "fail"]
    return f"FAIL ({', '.join(failed)})" if failed else "pass"


def describe_tags(model_class: type | None) -> str:
    """The capability tags in a few words."""
    if model_class is None:
        return ""
    tags = model_class.get_tags()
    minimum = [f"{tags['min_history']} obs"] if tags["min_history"] > 1 else []
    if tags["min_history_seasons"]:
        minimum.append(f"{tags['min_history_seasons']:g} season(s)")
    words = [
        tags["scope"],
        "native quantiles" if tags["native_quantiles"] else "conformal quantiles",
        "+".join(tags["demand_types"]),
        *(["exogenous"] if tags["exogenous"] else []),
        *(["expensive"] if tags["expensive"] else []),
        *([f"min history {' and '.join(minimum)}"] if minimum else []),
    ]
    return ", ".join(words)


def plugin_table(settings: Settings) -> list[dict[str, str]]:
    """One row per installed plug-in: what ``forecasting plugins list`` shows."""
    configured = {c.name for c in settings.models.candidates} | set(settings.models.fallback)
    folder = verdict_folder(settings)
    return [
        {
            "name": info.name,
            "version": info.version,
            "distribution": info.distribution,
            "owner": info.owner,
            "active": "yes" if info.name in configured else "no",
            "conformance": cached_status(info, folder),
            "tags": describe_tags(info.model_class),
        }
        for info in installed_plugins().values()
    ]


def check_and_store(name: str, settings: Settings) -> dict[str, Any]:
    """Run the whole kit on model ``name`` now; a plug-in's verdict replaces its cached one."""
    found = model_class(name)
    info = installed_plugins().get(name)
    plugin = info is not None and info.model_class is found
    results = run_kit(name, settings)
    if plugin:
        assert info is not None
        store_verdict(verdict_folder(settings), info, results)
        source = f"{info.distribution} {info.version}, owner {info.owner or 'unknown'}"
    else:
        source = f"built in (forecasting {__version__})"
    descriptions = {check.name: check.description for check in kit.KIT}
    return {
        "name": name,
        "source": source,
        "results": [{**asdict(r), "description": descriptions.get(r.check, "")} for r in results],
    }
