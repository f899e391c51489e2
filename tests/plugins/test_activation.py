"""Activating plug-ins by name: limits from config, built-ins in-process, the conformance gate
(a step of its own: building a plan checks nothing)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forecasting.activation.verdicts import (
    PluginNotConformantError,
    activate_plugins,
    check_and_store,
)
from forecasting.cli import EXIT_CONFIG, main
from forecasting.config import ConfigError, Settings
from forecasting.models.catalog import PluginLoadError, UnknownModelError, available_models
from forecasting.training.plan import IsolationLimits, TrainingPlan


def _settings(cache: Path, candidates: list[dict], **plugins) -> Settings:
    return Settings(
        forecast={"season_length": 4},
        models={"candidates": candidates, "fallback": ["Naive"]},
        plugins={"verdict_cache": str(cache), **plugins},
    )


def test_a_plugin_is_activated_by_name_with_its_parameters_and_limits(tmp_path):
    settings = _settings(
        tmp_path,
        [{"name": "Naive"}, {"name": "SeasonalMovingAverage", "alias": "SMA2", "params": {"n_seasons": 2}}],
        limits={"SeasonalMovingAverage": {"timeout_seconds": 30}},
    )
    plan = TrainingPlan.from_settings(settings)
    naive, plugin = plan.candidates
    assert naive.isolation is None and plan.fallbacks[0].isolation is None  # built-ins: in-process, as before
    assert plugin.label == "SMA2"
    assert plugin.model.get_params() == {"season_length": 4, "n_seasons": 2, "window": 8, "weight": 0.5}
    assert plugin.isolation == IsolationLimits(timeout_seconds=30.0, memory_limit_mb=2048)


def test_isolation_can_be_switched_off(tmp_path):
    settings = _settings(tmp_path, [{"name": "SeasonalMovingAverage"}], isolation=False)
    assert TrainingPlan.from_settings(settings).candidates[0].isolation is None


def test_a_plugin_that_fails_the_kit_cannot_be_activated(tmp_path, fixture_plugins):
    with pytest.raises(PluginNotConformantError) as info:
        activate_plugins(_settings(tmp_path, [{"name": "Naive"}, {"name": "BreaksContract"}]))
    message = str(info.value)
    assert isinstance(info.value, ConfigError)  # the CLI exits with code 2
    assert "plug-in 'BreaksContract' (forecasting-test-misbehaving 0.0.1) failed the conformance kit" in message
    assert "init_stores_params_only" in message and "no_input_mutation" in message
    assert "forecasting plugins check BreaksContract" in message


def test_building_a_plan_checks_nothing(tmp_path, fixture_plugins):
    """No kit, no child process, no lock or verdict file: activation is the pipeline's step before."""
    cache = tmp_path / "verdicts"
    plan = TrainingPlan.from_settings(_settings(cache, [{"name": "Naive"}, {"name": "BreaksContract"}]))
    assert [c.label for c in plan.candidates] == ["Naive", "BreaksContract"]
    assert not cache.exists()


def test_the_verdict_is_cached_per_plugin_version(tmp_path):
    settings = _settings(tmp_path, [{"name": "SeasonalMovingAverage"}])
    activate_plugins(settings)
    (verdict,) = tmp_path.glob("SeasonalMovingAverage-*.json")
    # A cached verdict is believed without rerunning the kit: doctor it into a failure ...
    content = json.loads(verdict.read_text())
    content["results"][0].update(status="fail", reason="doctored")
    verdict.write_text(json.dumps(content))
    with pytest.raises(PluginNotConformantError, match=r"template_methods \(doctored\)"):
        activate_plugins(settings)
    # ... and `forecasting plugins check` recomputes and replaces it.
    assert all(r["status"] == "pass" for r in check_and_store("SeasonalMovingAverage", settings)["results"])
    activate_plugins(settings)


def test_a_broken_plugin_hides_nothing_but_itself(tmp_path, fixture_plugins):
    models = available_models()
    assert "Unloadable" not in models
    assert {"Misbehaving", "SeasonalMovingAverage", "Naive"} <= set(models)
    with pytest.raises(PluginLoadError, match="plug-in 'Unloadable' .* cannot be loaded: ModuleNotFoundError"):
        TrainingPlan.from_settings(_settings(tmp_path, [{"name": "Unloadable"}]))


def test_an_unknown_name_is_a_clear_error(tmp_path):
    with pytest.raises(UnknownModelError, match="unknown model 'NoSuchModel'; available: .*SeasonalMovingAverage"):
        TrainingPlan.from_settings(_settings(tmp_path, [{"name": "NoSuchModel"}]))


def test_the_run_command_refuses_a_nonconformant_plugin_with_exit_code_2(tmp_path, fixture_plugins, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(
        "demo: {n_series: 10, n_periods: 60}\n"
        "forecast: {horizon: 4}\n"
        "models: {candidates: [{name: Naive}, {name: BreaksContract}]}\n"
        f"plugins: {{verdict_cache: {tmp_path / 'verdicts'}}}\n"
        f"compute: {{executor: serial, n_shards: 1, progress: false}}\noutput: {{root: {tmp_path / 'out'}}}\n"
    )
    assert main(["run", "--config", str(config), "--json"]) == EXIT_CONFIG
    error = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert error["error_type"] == "PluginNotConformantError"
    assert "no_input_mutation" in error["error"]
