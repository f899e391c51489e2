"""The conformance kit's model-level checks: the model contract (docs/architecture.md, "The model contract").

Each check takes a model class, builds it from every parameter set of its
``get_test_params()`` (``season_length`` filled in where the model takes one),
runs it on small synthetic series, and raises ``ConformanceFailure`` with the
reason when the class breaks the contract. The checks that need the training
machinery (a real backtest, an isolated child process) live one layer up, in
``forecasting.activation.conformance``, which also holds the full kit and the pytest
helper ``parametrize_with_checks``.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import pickle
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from forecasting.models.base import (
    DEFAULT_TAGS,
    Forecast,
    ForecastModel,
    HistoryTooShortError,
    NotFittedError,
    model_season_length,
)
from forecasting.models.catalog import instantiate
from forecasting.models.conformal import predict_with_quantiles
from forecasting.models.sandbox import sandbox_environment

SEASON = 4
H = 6
MIN_OBS = 40
QUANTILES = (0.05, 0.1, 0.5, 0.9, 0.95)
CONFORMAL_WINDOWS = 2
SEED_PARAMETERS = ("seed", "random_state", "random_seed")
IMPORT_CHECK_TIMEOUT = 300.0  # seconds; importing statsforecast alone takes several on a busy machine
_PUBLIC_METHODS = ("fit", "predict", "get_params", "set_params", "clone", "get_tags", "get_tag")
_DEMAND_TYPES = {"smooth", "intermittent"}

Status = Literal["pass", "fail", "skip"]


class ConformanceFailure(AssertionError):
    """A model class breaks the contract; the message says how."""


@dataclass(frozen=True)
class Check:
    """One named check of the kit."""

    name: str
    description: str
    function: Callable[[type[ForecastModel]], None]
    # Returns why the check does not apply to a class ("" when it does).
    not_applicable: Callable[[type[ForecastModel]], str] = lambda model_class: ""

    def __call__(self, model_class: type[ForecastModel]) -> None:
        start_import_probe(model_class.__module__)  # runs beside the in-process checks
        self.function(model_class)


@dataclass(frozen=True)
class CheckResult:
    check: str
    status: Status
    reason: str = ""
    seconds: float = 0.0


def run_checks(model_class: type[ForecastModel], checks: Sequence[Check]) -> list[CheckResult]:
    """Run every check on ``model_class``; a check that raises anything fails with that reason."""
    results = []
    for check in checks:
        started = time.perf_counter()
        skip = check.not_applicable(model_class)
        if skip:
            results.append(CheckResult(check.name, "skip", skip))
            continue
        try:
            check(model_class)
        except ConformanceFailure as exc:
            status, reason = "fail", str(exc)
        except Exception as exc:
            status, reason = "fail", f"{type(exc).__name__}: {exc}"
        else:
            status, reason = "pass", ""
        results.append(CheckResult(check.name, status, reason[:500], round(time.perf_counter() - started, 3)))
    return results


# --------------------------------------------------------------------------- helpers


def _fail_unless(condition: bool, reason: str) -> None:
    if not condition:
        raise ConformanceFailure(reason)


def demand_type(model_class: type[ForecastModel]) -> str:
    """The lifecycle class the kit tests a model on: smooth if it takes smooth series."""
    types = tuple(model_class.get_tag("demand_types") or ())
    return "smooth" if "smooth" in types or not types else "intermittent"


def kit_series(n: int, seed: int = 0, kind: str = "smooth") -> np.ndarray:
    """Positive trend + season 4 + noise, or (intermittent) sparse positive demand."""
    rng = np.random.default_rng(seed)
    if kind == "intermittent":
        values = rng.poisson(4.0, n).astype(np.float64) * (rng.random(n) < 0.4)
        values[-1] = max(values[-1], 1.0)  # never an all-zero tail
        return values
    t = np.arange(n)
    return 20.0 + 0.2 * t + 3.0 * np.sin(2 * np.pi * t / SEASON) + rng.normal(0.0, 0.5, n)


def parameter_sets(model_class: type[ForecastModel]) -> list[dict[str, Any]]:
    sets = model_class.get_test_params()
    _fail_unless(isinstance(sets, list) and len(sets) > 0, "get_test_params() must return a non-empty list of dicts")
    return sets


def instances(model_class: type[ForecastModel]) -> Iterator[ForecastModel]:
    """One fresh instance per parameter set of ``get_test_params()``."""
    for params in parameter_sets(model_class):
        yield instantiate(model_class, params, SEASON)


def n_obs_for(model: ForecastModel) -> int:
    """A history long enough for the model's minimum, conformal windows and a two-window backtest."""
    return max(MIN_OBS, model.min_history(model_season_length(model)) + 5 * H)


def series_for(model: ForecastModel, seed: int = 0) -> np.ndarray:
    return kit_series(n_obs_for(model), seed, demand_type(type(model)))


def _seeded(model: ForecastModel) -> ForecastModel:
    seeds = {name: 0 for name in SEED_PARAMETERS if name in model.get_params()}
    return model.set_params(**seeds) if seeds else model


def same(a: Any, b: Any) -> bool:
    """Equality that also accepts equal-state copies of objects without ``__eq__``."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, z) for x, z in zip(a, b, strict=True))
    if isinstance(a, np.ndarray):
        return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))
    try:
        if bool(a == b):
            return True
    except Exception:  # objects whose == is elementwise or raises
        pass
    return hasattr(a, "__dict__") and same(vars(a), vars(b))


def same_forecast(a: Forecast, b: Forecast) -> bool:
    return (
        np.array_equal(a.point, b.point, equal_nan=True)
        and a.quantiles.keys() == b.quantiles.keys()
        and all(np.array_equal(a.quantiles[q], b.quantiles[q], equal_nan=True) for q in a.quantiles)
    )


def is_fitted(model: ForecastModel) -> bool:
    return any(name.endswith("_") and not name.startswith("_") for name in vars(model))


def _name(model: ForecastModel) -> str:
    return repr(model)[:200]


# --------------------------------------------------------------------------- the checks


def _defined_in(model_class: type, name: str) -> type | None:
    return next((cls for cls in model_class.__mro__ if name in vars(cls)), None)


def check_template_methods(model_class: type[ForecastModel]) -> None:
    _fail_unless(
        isinstance(model_class, type) and issubclass(model_class, ForecastModel),
        f"{model_class!r} is not a subclass of forecasting.models.base.ForecastModel",
    )
    for method in ("_fit", "_predict"):
        _fail_unless(
            _defined_in(model_class, method) is not ForecastModel, f"{method} is not implemented"
        )
    overridden = [m for m in _PUBLIC_METHODS if _defined_in(model_class, m) is not ForecastModel]
    _fail_unless(not overridden, f"overrides the base class's public {overridden}: implement _fit/_predict instead")


def check_tags(model_class: type[ForecastModel]) -> None:
    unknown = sorted(set(model_class.tags) - set(DEFAULT_TAGS))
    _fail_unless(not unknown, f"unknown tags {unknown}; known: {sorted(DEFAULT_TAGS)}")
    tags = model_class.get_tags()
    problems = []
    if tags["scope"] not in ("local", "global"):
        problems.append(f"scope must be 'local' or 'global', got {tags['scope']!r}")
    for flag in ("native_quantiles", "exogenous", "expensive"):
        if not isinstance(tags[flag], bool):
            problems.append(f"{flag} must be True or False, got {tags[flag]!r}")
    if not (isinstance(tags["min_history"], int) and tags["min_history"] >= 1):
        problems.append(f"min_history must be an integer >= 1, got {tags['min_history']!r}")
    if not (isinstance(tags["min_history_seasons"], int | float) and tags["min_history_seasons"] >= 0):
        problems.append(f"min_history_seasons must be a number >= 0, got {tags['min_history_seasons']!r}")
    types = tags["demand_types"]
    if not (isinstance(types, tuple | list) and types and set(types) <= _DEMAND_TYPES):
        problems.append(f"demand_types must be a non-empty tuple from {sorted(_DEMAND_TYPES)}, got {types!r}")
    _fail_unless(not problems, "; ".join(problems))


def check_test_params(model_class: type[ForecastModel]) -> None:
    names = set(model_class._param_names())
    for params in parameter_sets(model_class):
        _fail_unless(isinstance(params, dict), f"get_test_params() entries must be dicts, got {params!r}")
        unknown = sorted(set(params) - names)
        _fail_unless(not unknown, f"get_test_params() names unknown parameters {unknown}")
        instantiate(model_class, params, SEASON)


def check_init_stores_params_only(model_class: type[ForecastModel]) -> None:
    for params in parameter_sets(model_class):
        model = instantiate(model_class, params, SEASON)
        names = set(model._param_names())
        extra = sorted(set(vars(model)) - names)
        _fail_unless(not extra, f"__init__ sets attributes that are not parameters: {extra}")
        missing = sorted(names - set(vars(model)))
        _fail_unless(not missing, f"__init__ does not store the parameters {missing}")
        changed = [k for k, v in params.items() if getattr(model, k) is not v]
        _fail_unless(not changed, f"__init__ must store parameters unchanged; modified: {changed}")


def check_params_round_trip(model_class: type[ForecastModel]) -> None:
    for model in instances(model_class):
        params = model.get_params()
        _fail_unless(list(params) == model._param_names(), "get_params() keys differ from the constructor's")
        _fail_unless(same(type(model)(**params).get_params(), params), "rebuilding from get_params() changes them")
        target = type(model)(**copy_params(params))
        _fail_unless(target.set_params(**params) is target, "set_params() must return self")
        _fail_unless(same(target.get_params(), params), "set_params() does not set the parameters")
        try:
            model.set_params(no_such_parameter=1)
        except ValueError:
            pass
        else:
            raise ConformanceFailure("set_params() accepted an unknown parameter")


def copy_params(params: dict[str, Any]) -> dict[str, Any]:
    return pickle.loads(pickle.dumps(params))


def check_clone(model_class: type[ForecastModel]) -> None:
    for model in instances(model_class):
        fitted = model.fit(series_for(model))
        copy = fitted.clone()
        _fail_unless(type(copy) is type(fitted) and copy is not fitted, "clone() must return a new instance")
        _fail_unless(not is_fitted(copy), "clone() must return an unfitted copy (no attributes ending in _)")
        _fail_unless(same(copy.get_params(), fitted.get_params()), "clone() changed the parameters")
        fitted.predict(H)  # the original is still fitted


def check_not_fitted_error(model_class: type[ForecastModel]) -> None:
    for model in instances(model_class):
        try:
            model.predict(H)
        except NotFittedError:
            continue
        raise ConformanceFailure("predict() before fit() must raise NotFittedError")


def check_fit_returns_self(model_class: type[ForecastModel]) -> None:
    for model in instances(model_class):
        _fail_unless(model.fit(series_for(model)) is model, "fit() must return self")


def check_no_input_mutation(model_class: type[ForecastModel]) -> None:
    for model in instances(model_class):
        y = series_for(model)
        before, params = y.copy(), copy_params(model.get_params())
        model.fit(y).predict(H, QUANTILES)
        _fail_unless(np.array_equal(y, before), "fit() or predict() modified the input series")
        _fail_unless(same(model.get_params(), params), "fit() changed the parameters (fitted state must end in _)")


def check_forecast_shape(model_class: type[ForecastModel]) -> None:
    for model in instances(model_class):
        model.fit(series_for(model))
        for h in (1, H):
            forecast = model.predict(h, QUANTILES)
            _fail_unless(isinstance(forecast, Forecast), f"predict() must return a Forecast, got {type(forecast)}")
            _fail_unless(forecast.point.shape == (h,), f"point forecast of shape {forecast.point.shape} for h={h}")
            _fail_unless(bool(np.isfinite(forecast.point).all()), f"non-finite point forecast for h={h}")
            for q, values in forecast.quantiles.items():
                values = np.asarray(values, dtype=np.float64)
                _fail_unless(values.shape == (h,), f"quantile {q} of shape {values.shape} for h={h}")
                _fail_unless(bool(np.isfinite(values).all()), f"non-finite quantile {q} for h={h}")


def _assert_monotone(quantiles: dict[float, np.ndarray], what: str) -> None:
    levels = sorted(quantiles)
    matrix = np.vstack([np.asarray(quantiles[q], dtype=np.float64) for q in levels])
    _fail_unless(bool(np.isfinite(matrix).all()), f"{what} quantiles are not finite")
    _fail_unless(bool((np.diff(matrix, axis=0) >= -1e-9).all()), f"{what} quantiles cross: {levels}")


def check_quantiles(model_class: type[ForecastModel]) -> None:
    for model in instances(model_class):
        y = series_for(model)
        forecast = model.clone().fit(y).predict(H, QUANTILES)
        unexpected = sorted(set(forecast.quantiles) - set(QUANTILES))
        _fail_unless(not unexpected, f"returned quantiles that were not asked for: {unexpected}")
        if model.get_tag("native_quantiles"):
            missing = sorted(set(QUANTILES) - set(forecast.quantiles))
            _fail_unless(not missing, f"tagged native_quantiles but did not return {missing}")
        if forecast.quantiles:
            _assert_monotone(forecast.quantiles, "native")
        # the framework's quantiles (conformal where the model has none) must be sound too
        complete = predict_with_quantiles(model.clone(), y, H, QUANTILES, CONFORMAL_WINDOWS)
        _assert_monotone({q: complete.quantiles[q] for q in QUANTILES}, "framework")


def check_fit_idempotent(model_class: type[ForecastModel]) -> None:
    for model in instances(model_class):
        y, other = series_for(model, seed=0), series_for(model, seed=1) * 1.5
        first = model.fit(y).predict(H, QUANTILES)
        again = model.fit(y).predict(H, QUANTILES)
        _fail_unless(same_forecast(first, again), "fitting twice on the same data gives different forecasts")
        model.fit(other)
        after_other = model.fit(y).predict(H, QUANTILES)
        _fail_unless(same_forecast(first, after_other), "a fit keeps state from an earlier fit on other data")


def check_deterministic(model_class: type[ForecastModel]) -> None:
    for params in parameter_sets(model_class):
        a = _seeded(instantiate(model_class, params, SEASON))
        b = _seeded(instantiate(model_class, copy_params(params), SEASON))
        y = series_for(a)
        _fail_unless(
            same_forecast(a.fit(y).predict(H, QUANTILES), b.fit(y.copy()).predict(H, QUANTILES)),
            f"two instances with the same parameters{' and seed' if a.get_params().keys() & set(SEED_PARAMETERS) else ''} "
            "give different forecasts",
        )


def check_pickle(model_class: type[ForecastModel]) -> None:
    for model in instances(model_class):
        pickle.loads(pickle.dumps(model))  # the unfitted prototype travels to child processes
        fitted = model.fit(series_for(model))
        restored = pickle.loads(pickle.dumps(fitted))
        _fail_unless(type(restored) is type(fitted), "unpickling gives another class")
        _fail_unless(same(restored.get_params(), fitted.get_params()), "unpickling changes the parameters")
        _fail_unless(
            same_forecast(restored.predict(H, QUANTILES), fitted.predict(H, QUANTILES)),
            "the unpickled model forecasts differently",
        )


def check_short_history(model_class: type[ForecastModel]) -> None:
    for model in instances(model_class):
        needed = model.min_history(model_season_length(model))
        y = series_for(model)
        try:
            model.clone().fit(y[: needed - 1])
        except HistoryTooShortError:
            pass
        else:
            raise ConformanceFailure(f"fit() on {needed - 1} observations (minimum {needed}) must raise HistoryTooShortError")
        # the declared minimum is honest: at it the model fits and forecasts
        forecast = model.clone().fit(y[:needed]).predict(H)
        _fail_unless(bool(np.isfinite(forecast.point).all()), f"non-finite forecast at the declared minimum of {needed}")


# --------------------------------------------------------------------------- import side effects

_IMPORT_PROBE = r"""
import importlib, json, logging, os, sys, threading

def native_threads():
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()

def files():
    found = set()
    for root in sys.argv[2:5]:
        for folder, _, names in os.walk(root):
            found.update(os.path.join(folder, name) for name in names)
    return found

def snapshot():
    return {
        "threads": sorted(t.name for t in threading.enumerate()),
        "native_threads": native_threads(),
        "files": files(),
        "env": dict(os.environ),
        "handlers": len(logging.getLogger().handlers),
    }

for name in json.loads(sys.argv[5]):
    try:
        importlib.import_module(name)
    except Exception:
        pass
importlib.import_module("forecasting.models.base")
before = snapshot()
importlib.import_module(sys.argv[1])
after = snapshot()
env = {k: v for k, v in after["env"].items() if before["env"].get(k) != v}
print(json.dumps({
    "threads": sorted(set(after["threads"]) - set(before["threads"])),
    "native_threads": after["native_threads"] - before["native_threads"],
    "files": sorted(after["files"] - before["files"]),
    "env": sorted(env) + sorted(set(before["env"]) - set(after["env"])),
    "handlers": after["handlers"] - before["handlers"],
}))
"""


def _module_imports(path: Path) -> Iterator[tuple[str, int, list[str]]]:
    """(module, level, names) of the imports a file runs when it is imported (not those in functions)."""
    tree = ast.parse(path.read_text(), str(path))
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import):
            yield from ((alias.name, 0, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield node.module or "", node.level, [alias.name for alias in node.names]
        elif isinstance(node, ast.If | ast.Try | ast.With):
            for field in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, field, []):
                    pending.extend(child.body if isinstance(child, ast.ExceptHandler) else [child])


def _resolve(module: str, level: int, importer: str, is_package: bool) -> str:
    if level == 0:
        return module
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


def third_party_imports(module_name: str) -> list[str]:
    """Modules outside ``module_name``'s own top-level package that importing it imports."""
    root = module_name.split(".")[0]
    pending, seen, external = [module_name], set(), set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            continue
        is_package = spec.submodule_search_locations is not None
        for module, level, names in _module_imports(Path(spec.origin)):
            target = _resolve(module, level, name, is_package)
            if target == "__future__":
                continue
            if target.split(".")[0] != root:
                external.add(target)
                continue
            pending.append(target)
            for alias in names:  # ``from package import submodule``
                candidate = f"{target}.{alias}"
                try:
                    if importlib.util.find_spec(candidate) is not None:
                        pending.append(candidate)
                except (ImportError, ValueError):
                    continue
    return sorted(external)


_probes: dict[str, Future[dict[str, Any]]] = {}
_probes_lock = threading.Lock()


def start_import_probe(module_name: str) -> Future[dict[str, Any]]:
    """Start (once per module and process) the fresh-interpreter import in a background thread."""
    with _probes_lock:
        if module_name not in _probes:
            future: Future[dict[str, Any]] = Future()
            _probes[module_name] = future

            def probe() -> None:
                try:
                    future.set_result(_probe_import(module_name))
                except Exception as exc:
                    future.set_exception(exc)

            threading.Thread(target=probe, name=f"import-probe-{module_name}", daemon=True).start()
        return _probes[module_name]


def import_side_effects(module_name: str) -> dict[str, Any]:
    """What importing ``module_name`` in a fresh interpreter starts, writes or sets.

    The third-party modules it imports are imported first: their side effects are
    theirs, and a worker has paid for them anyway. Runs once per module and process.
    """
    return start_import_probe(module_name).result()


def _probe_import(module_name: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="forecasting-import-check-") as scratch:
        roots = [Path(scratch) / part for part in ("cwd", "tmp", "home")]
        for root in roots:
            root.mkdir()
        env = sandbox_environment(roots[2], {"TMPDIR": str(roots[1]), "PYTHONDONTWRITEBYTECODE": "1"})
        baseline = json.dumps(third_party_imports(module_name))
        completed = subprocess.run(
            [sys.executable, "-c", _IMPORT_PROBE, module_name, *map(str, roots), baseline],
            cwd=roots[0],
            env=env,
            capture_output=True,
            text=True,
            timeout=IMPORT_CHECK_TIMEOUT,
        )
    if completed.returncode != 0:
        tail = completed.stderr.strip().splitlines()[-1:] or [f"exit code {completed.returncode}"]
        return {"error": f"importing {module_name} in a fresh interpreter failed: {tail[0]}"}
    return json.loads(completed.stdout.strip().splitlines()[-1])


def check_import_side_effects(model_class: type[ForecastModel]) -> None:
    found = import_side_effects(model_class.__module__)
    _fail_unless("error" not in found, str(found.get("error")))
    problems = []
    if found["threads"] or found["native_threads"] > 0:
        problems.append(f"starts threads {found['threads'] or found['native_threads']}")
    if found["files"]:
        problems.append(f"creates files {found['files'][:5]}")
    if found["env"]:
        problems.append(f"sets environment variables {found['env']}")
    if found["handlers"]:
        problems.append("configures logging")
    _fail_unless(not problems, f"importing {model_class.__module__} " + "; ".join(problems))


MODEL_CHECKS: tuple[Check, ...] = (
    Check("template_methods", "implements _fit/_predict, keeps the base class's public methods", check_template_methods),
    Check("tags_valid", "capability tags are known and well typed", check_tags),
    Check("test_params_valid", "get_test_params() returns parameter sets the constructor takes", check_test_params),
    Check("init_stores_params_only", "__init__ stores its parameters unchanged and nothing else", check_init_stores_params_only),
    Check("params_round_trip", "get_params/set_params round-trip; unknown parameters are rejected", check_params_round_trip),
    Check("clone_unfitted", "clone() is an unfitted copy with equal parameters", check_clone),
    Check("not_fitted_error", "predict() before fit() raises NotFittedError", check_not_fitted_error),
    Check("fit_returns_self", "fit() returns self", check_fit_returns_self),
    Check("no_input_mutation", "fit/predict leave the input and the parameters unchanged", check_no_input_mutation),
    Check("forecast_shape_finite", "h finite points (and quantiles) for h = 1 and 6", check_forecast_shape),
    Check("quantiles_monotone", "native quantiles complete and monotone; framework quantiles too", check_quantiles),
    Check("fit_idempotent", "refitting gives the same forecast; no state survives a refit", check_fit_idempotent),
    Check("deterministic_with_seed", "equal parameters (and seed) give equal forecasts", check_deterministic),
    Check("pickle_round_trip", "unfitted and fitted models pickle; the copy forecasts the same", check_pickle),
    Check("too_short_history", "below the declared minimum: HistoryTooShortError; at it: a forecast", check_short_history),
    Check("import_side_effects", "importing the module starts no threads, writes no files, sets no env", check_import_side_effects),
)
