"""plugins/_template as shipped: a working placeholder that passes the kit, with consistent metadata."""

from __future__ import annotations

import importlib
import sys
import tomllib
from pathlib import Path

import pytest

from forecasting.activation.conformance import check_model

TEMPLATE = Path(__file__).resolve().parents[2] / "plugins" / "_template"


@pytest.fixture
def template_package():
    sys.path.insert(0, str(TEMPLATE / "src"))
    try:
        yield importlib.import_module("my_forecasting_plugin.model")
    finally:
        sys.path.remove(str(TEMPLATE / "src"))


def test_the_template_model_passes_the_kit_before_any_change(template_package):
    assert [r for r in check_model(template_package.MyModel) if r.status != "pass"] == []


def test_the_template_metadata_points_at_its_class():
    project = tomllib.loads((TEMPLATE / "pyproject.toml").read_text())
    (name, target), = project["project"]["entry-points"]["forecasting.models"].items()
    module, _, attribute = target.partition(":")
    assert (name, attribute) == ("MyModel", "MyModel")
    assert (TEMPLATE / "src" / Path(*module.split("."))).with_suffix(".py").is_file()
    assert project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["src/my_forecasting_plugin"]


def test_the_todos_are_numbered_in_order():
    texts = [p.read_text() for p in (TEMPLATE / "pyproject.toml", *sorted((TEMPLATE / "src").rglob("*.py")), *sorted((TEMPLATE / "tests").glob("*.py")))]
    numbers = [int(part.split(":")[0]) for text in texts for part in text.split("TODO ")[1:] if part.split(":")[0].isdigit()]
    assert numbers == list(range(1, len(numbers) + 1))
