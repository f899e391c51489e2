"""Environments: every shipped config names where its outputs go, and no two share them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from forecasting.config import load_settings

CONFIG = Path(__file__).resolve().parents[3] / "config"
ENVIRONMENTS = ["demo.yaml", "staging.yaml", "production.example.yaml"]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("FORECASTING__")]:
        monkeypatch.delenv(key)


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_each_environment_names_its_output_root_table_experiment_and_model(name: str):
    raw = yaml.safe_load((CONFIG / name).read_text())
    assert raw["output"]["root"] and raw["database"]["forecast_table"]
    assert raw["registry"]["experiment"] and raw["registry"]["model_name"]
    load_settings(CONFIG / name)  # and it is a valid settings file


def _where(name: str) -> dict[str, object]:
    settings = load_settings(CONFIG / name)
    return {"root": settings.output.root, "table": settings.database.forecast_table,
            "experiment": settings.registry.experiment, "model": settings.registry.model_name}


def test_staging_shares_nothing_with_the_demo():
    demo, staging = _where("demo.yaml"), _where("staging.yaml")
    assert all(demo[key] != staging[key] for key in demo), (demo, staging)
    assert str(staging["root"]).startswith("output/")  # beside the demo's files, not among them
