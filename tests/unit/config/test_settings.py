"""Settings: embedded defaults, the YAML file, environment overrides, flags, and clear errors."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

from forecasting.config import ConfigError, Settings, default_season_length, load_settings

PROJECT_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_YAML = PROJECT_ROOT / "config" / "default.yaml"
TEST_YAML = PROJECT_ROOT / "config" / "test.yaml"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("FORECASTING__")]:
        monkeypatch.delenv(key)


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    return path


def test_defaults():
    settings = load_settings()
    assert settings == Settings()
    assert settings.data.path is None
    assert settings.forecast.freq == "W-SUN"
    assert settings.forecast.horizon == 13
    assert settings.season_length == 52
    assert settings.forecast.quantiles == [0.1, 0.5, 0.9]
    assert settings.forecast.as_of is None
    assert settings.validation.max_quarantine_share == 0.2
    assert settings.validation.negative_values == "allow"
    assert settings.validation.gaps == "fill_zero"
    assert settings.models.fallback == ["Naive", "HistoricAverage"]
    assert settings.backtest_step == settings.forecast.horizon
    assert settings.output.root == Path("output")


def test_default_yaml_equals_the_embedded_defaults():
    assert load_settings(DEFAULT_YAML) == load_settings()


def test_test_profile_is_small_and_keeps_the_contract_quantiles():
    settings = load_settings(TEST_YAML)
    assert settings.demo.n_series < Settings().demo.n_series
    assert settings.forecast.quantiles == [0.1, 0.5, 0.9]  # the tests read p10, p50, p90
    assert settings.forecast.freq == "W-SUN"


def test_layering_file_then_environment_then_explicit_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = _yaml(tmp_path, "forecast:\n  horizon: 8\n  freq: MS\n")
    assert load_settings(path).forecast.horizon == 8
    monkeypatch.setenv("FORECASTING__FORECAST__HORIZON", "26")
    settings = load_settings(path)
    assert settings.forecast.horizon == 26  # the environment beats the file ...
    assert settings.forecast.freq == "MS"  # ... key by key: the file's other keys stay
    assert load_settings(path, {"forecast": {"horizon": 5}}).forecast.horizon == 5  # flags beat both
    assert load_settings(None).forecast.horizon == 26  # and the environment beats the defaults


def test_environment_value_is_validated_and_named(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FORECASTING__FORECAST__HORIZON", "soon")
    with pytest.raises(ConfigError, match=r"forecast\.horizon"):
        load_settings()


@pytest.mark.parametrize(
    ("freq", "season"),
    [("W-SUN", 52), ("W-FRI", 52), ("W", 52), ("MS", 12), ("ME", 12), ("Q", 4), ("QS", 4), ("D", 7), ("h", 24), ("H", 24)],
)
def test_season_length_from_the_frequency(freq: str, season: int):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # pandas deprecates "H" (and "Q") aliases
        assert default_season_length(freq) == season
        assert load_settings(None, {"forecast": {"freq": freq}}).season_length == season


def test_explicit_season_length_wins():
    assert load_settings(None, {"forecast": {"freq": "D", "season_length": 365}}).season_length == 365


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ([0.1, 0.9], [0.1, 0.5, 0.9]),
        ([0.9, 0.5, 0.1], [0.1, 0.5, 0.9]),
        ([0.95, 0.05, 0.95], [0.05, 0.5, 0.95]),
        ([0.025], [0.025, 0.5]),
        ([], [0.5]),
    ],
)
def test_quantiles_always_include_the_median_and_are_sorted(given: list[float], expected: list[float]):
    assert load_settings(None, {"forecast": {"quantiles": given}}).forecast.quantiles == expected


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"forecast": {"horizon": 0}}, "forecast.horizon"),
        ({"forecast": {"horizon": "thirteen"}}, "forecast.horizon"),
        ({"forecast": {"quantiles": [0.1, 1.5]}}, "forecast.quantiles"),
        ({"forecast": {"freq": "FORTNIGHTLY"}}, "forecast.freq"),
        ({"forecast": {"as_of": "not a date"}}, "forecast.as_of"),
        ({"forecast": {"horizonn": 5}}, "forecast.horizonn"),
        ({"validation": {"max_quarantine_share": 1.5}}, "validation.max_quarantine_share"),
        ({"validation": {"gaps": "guess"}}, "validation.gaps"),
        ({"models": {"candidates": [{"name": "Naive"}, {"name": "Naive"}]}}, "models.candidates"),
        ({"models": {"candidates": []}}, "models.candidates"),
        ({"compute": {"n_shards": 0}}, "compute.n_shards"),
        ({"foo": {"bar": 1}}, "foo"),
    ],
)
def test_bad_value_is_a_config_error_naming_the_key(overrides: dict, key: str):
    with pytest.raises(ConfigError) as error:
        load_settings(None, overrides)
    assert key in str(error.value)
    assert str(error.value).startswith("invalid configuration:")


def test_unknown_key_in_a_yaml_file_is_named(tmp_path: Path):
    path = _yaml(tmp_path, "forecast:\n  horizon: 13\n  seasonlength: 52\n")
    with pytest.raises(ConfigError, match=r"forecast\.seasonlength"):
        load_settings(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [("forecast: [unclosed\n", "not valid YAML"), ("- just\n- a list\n", "must hold a mapping")],
)
def test_unreadable_yaml_is_a_config_error(tmp_path: Path, text: str, message: str):
    with pytest.raises(ConfigError, match=message):
        load_settings(_yaml(tmp_path, text))


def test_missing_config_file_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "absent.yaml")


def test_empty_yaml_file_means_defaults(tmp_path: Path):
    assert load_settings(_yaml(tmp_path, "")) == Settings()
