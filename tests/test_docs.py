"""The documentation: a README a newcomer reads in ten minutes, links that resolve, a complete
configuration reference, and commands that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from forecasting.cli import _build_parser
from forecasting.config import Settings

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS, *sorted((ROOT / "plugins").glob("*/README.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
README_MAX_LINES, README_MAX_BYTES = 130, 9000  # about ten minutes of reading


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"`", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+)$", text, flags=re.M)}


def test_the_readme_stays_short():
    text = README.read_text()
    assert len(text.splitlines()) <= README_MAX_LINES and len(text.encode()) <= README_MAX_BYTES, (
        f"README.md has {len(text.splitlines())} lines, {len(text.encode())} bytes: move details into docs/"
    )


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_resolves(page: Path):
    broken = []
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+://|^mailto:", target):
            continue  # external: not checked without network
        path_part, _, anchor = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        if not resolved.exists():
            broken.append(f"{target} (no file {resolved.relative_to(ROOT) if resolved.is_relative_to(ROOT) else resolved})")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target} (no heading #{anchor})")
    assert not broken, f"{page.relative_to(ROOT)}: broken links: {broken}"


def test_the_configuration_reference_names_every_setting():
    reference = (ROOT / "docs" / "configuration.md").read_text()
    missing = [f"{section}.{key}" for section, field in Settings.model_fields.items()
               for key in field.annotation.model_fields if f"{section}.{key}" not in reference]
    assert not missing, f"docs/configuration.md does not describe {missing}"


def test_the_readmes_commands_exist():
    text = README.read_text()
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), flags=re.M))
    for target in re.findall(r"\bmake ([a-z][\w-]*)", text):
        assert target in targets, f"README.md mentions `make {target}`, which the Makefile does not have"
    parser = _build_parser()
    commands = parser._subparsers._group_actions[0].choices  # run, validate, explain, ...
    known = {option for sub in commands.values() for action in sub._actions for option in action.option_strings}
    for flag in set(re.findall(r"(?<![\w-])(--[a-z][\w-]*)", text)):
        assert flag in known, f"README.md mentions {flag}, which no command has"
    for command in re.findall(r"\.venv/bin/forecasting ([a-z-]+)", text):
        assert command in commands, f"README.md mentions `forecasting {command}`"
