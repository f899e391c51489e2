"""Shared fixtures: the benchmark data beside the project, and contained side effects."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FORECASTING_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; tests that need it skip with a reason when it is absent."""
    if not SHARED_DATA.is_dir():
        reason = f"benchmark data not found at {SHARED_DATA} (set FORECASTING_SHARED_DATA)"
        if os.environ.get("FORECASTING_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return SHARED_DATA


PLUGIN_FIXTURES = PROJECT_ROOT / "tests" / "plugins" / "fixtures"


def _uv() -> str:
    found = PROJECT_ROOT / ".tools" / "bin" / "uv"
    if found.exists():
        return str(found)
    on_path = shutil.which("uv")
    if on_path is None:
        pytest.fail("uv is needed to install the fixture plug-ins: `make setup` installs it into .tools/")
    return on_path


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture plug-in packages (tests/plugins/fixtures/*), installed into a temporary folder.

    A real install (built by their build backend, with their metadata and entry points), kept
    out of the project's environment: only tests that ask for ``fixture_plugins`` see them.
    """
    site = tmp_path_factory.mktemp("plugin-site")
    packages = [str(p) for p in sorted(PLUGIN_FIXTURES.iterdir()) if (p / "pyproject.toml").exists()]
    command = [_uv(), "pip", "install", "--quiet", "--no-deps", "--target", str(site), "--python", sys.executable, *packages]
    installed = subprocess.run([*command, "--offline"], capture_output=True, text=True)  # the build backend is cached
    if installed.returncode != 0:
        installed = subprocess.run(command, capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr
    return site


def _forget_plugins() -> None:
    from forecasting.models.catalog import available_models, installed_plugins

    available_models.cache_clear()
    installed_plugins.cache_clear()


@pytest.fixture
def fixture_plugins(plugin_site: Path) -> Iterator[Path]:
    """Put the installed fixture plug-ins (Misbehaving, BreaksContract, ExitsAtFit, ...) on sys.path."""
    sys.path.insert(0, str(plugin_site))
    _forget_plugins()
    try:
        yield plugin_site
    finally:
        sys.path.remove(str(plugin_site))
        for name in [m for m in sys.modules if m.split(".")[0] in ("misbehaving_models", "noisy_import_models")]:
            del sys.modules[name]
        (plugin_site / "misbehaving_models" / "target.json").unlink(missing_ok=True)
        _forget_plugins()
