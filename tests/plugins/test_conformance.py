"""The conformance kit over every built-in model and every installed plug-in (CI runs this).

Also: the kit catches what it claims to catch, on fixture plug-ins that break the contract.
"""

from __future__ import annotations

import pytest

from forecasting.activation.conformance import KIT, check_model, parametrize_with_checks
from forecasting.models.catalog import installed_plugins
from forecasting.models.conformance import (
    ConformanceFailure,
    check_import_side_effects,
    check_template_methods,
    run_checks,
)
from forecasting.models.statsforecast_models import BUILTIN_MODELS

PLUGINS = [info.model_class for info in installed_plugins().values() if info.model_class is not None]

# statsforecast's numeric warnings on tiny synthetic series are its own business.
pytestmark = [
    pytest.mark.filterwarnings("ignore::RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:Too few residuals after burn-in:UserWarning"),
]


@parametrize_with_checks([*BUILTIN_MODELS.values(), *PLUGINS])
def test_conformance(model_class, check):
    check(model_class)


def test_make_setup_installed_the_example_plugin():
    assert "SeasonalMovingAverage" in installed_plugins()


def test_the_kit_has_the_documented_checks():
    assert [c.name for c in KIT] == [
        "template_methods", "tags_valid", "test_params_valid", "init_stores_params_only", "params_round_trip",
        "clone_unfitted", "not_fitted_error", "fit_returns_self", "no_input_mutation", "forecast_shape_finite",
        "quantiles_monotone", "fit_idempotent", "deterministic_with_seed", "pickle_round_trip",
        "too_short_history", "import_side_effects", "real_backtest", "runs_isolated",
    ]


def test_the_kit_names_each_broken_rule(fixture_plugins):
    from misbehaving_models import BreaksContract

    results = {r.check: r for r in check_model(BreaksContract)}
    failed = {name for name, r in results.items() if r.status == "fail"}
    assert {"init_stores_params_only", "no_input_mutation", "fit_idempotent"} <= failed
    assert "history" in results["init_stores_params_only"].reason
    assert "modified the input series" in results["no_input_mutation"].reason
    assert results["tags_valid"].status == "pass"


def test_a_plugin_that_misbehaves_only_on_some_series_passes_the_kit(fixture_plugins):
    from misbehaving_models import Misbehaving

    assert [r for r in check_model(Misbehaving) if r.status != "pass"] == []


def test_overriding_the_public_methods_is_caught(fixture_plugins):
    from misbehaving_models import Misbehaving

    class OwnFit(Misbehaving):
        def fit(self, y, X=None):
            return self

    with pytest.raises(ConformanceFailure, match=r"overrides the base class's public \['fit'\]"):
        check_template_methods(OwnFit)


def test_import_side_effects_are_caught(fixture_plugins):
    from forecasting.models.base import ForecastModel

    # A stand-in naming the module: the kit imports it in a fresh interpreter only, never here.
    stand_in = type("NoisyImport", (ForecastModel,), {"__module__": "noisy_import_models"})
    with pytest.raises(ConformanceFailure) as info:
        check_import_side_effects(stand_in)
    message = str(info.value)
    assert "starts threads ['noisy-plugin']" in message
    assert "noisy-plugin.cache" in message
    assert "NOISY_PLUGIN_LOADED" in message


def test_a_check_that_raises_fails_with_the_reason_and_the_others_still_run(fixture_plugins):
    from misbehaving_models import Misbehaving

    class Raising(Misbehaving):
        @classmethod
        def get_test_params(cls):
            raise RuntimeError("no test parameters today")

    results = run_checks(Raising, KIT[:3])
    assert [(r.check, r.status) for r in results] == [
        ("template_methods", "pass"), ("tags_valid", "pass"), ("test_params_valid", "fail")
    ]
    assert results[2].reason == "RuntimeError: no test parameters today"
