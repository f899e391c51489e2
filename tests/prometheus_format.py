"""A strict reader of the Prometheus text exposition format (0.0.4), for the tests."""

from __future__ import annotations

import re

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf"^({_NAME})(?:\{{(.*)\}})? ([^ ]+)$")
_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')
_TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "\\": "\\", '"': '"'}[m.group(1)], value)


def _labels(text: str) -> dict[str, str]:
    labels, position = {}, 0
    while position < len(text):
        match = _PAIR.match(text, position)
        assert match, f"malformed labels at {text[position:]!r}"
        assert match.group(1) not in labels, f"label {match.group(1)} twice"
        labels[match.group(1)] = _unescape(match.group(2))
        position = match.end()
    return labels


def parse(text: str) -> dict[str, dict]:
    """{family: {"help": str, "type": str, "samples": [(labels, value)]}}; fails on any violation."""
    assert text.endswith("\n"), "the exposition must end with a newline"
    families: dict[str, dict] = {}
    current = None
    for line in text.splitlines():
        assert line.strip(), "blank line"
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert re.fullmatch(_NAME, name) and name not in families, f"bad or repeated HELP {name}"
            families[name] = {"help": help_text, "type": None, "samples": []}
            current = name
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert name == current and families[name]["type"] is None and kind in _TYPES, f"bad TYPE line {line!r}"
            families[name]["type"] = kind
        else:
            match = _SAMPLE.match(line)
            assert match, f"malformed sample {line!r}"
            name, labels, value = match.groups()
            assert name == current and families[name]["type"], f"sample of {name} outside its family"
            families[name]["samples"].append((_labels(labels or ""), float(value)))
    return families
