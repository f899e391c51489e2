"""``forecasting plugins list`` and ``forecasting plugins check``."""

from __future__ import annotations

import json

from forecasting.cli import EXIT_FAILURE, EXIT_OK, main


def _run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_list_shows_version_owner_tags_and_whether_active(tmp_path, capsys, fixture_plugins):
    config = tmp_path / "config.yaml"
    config.write_text(f"models: {{candidates: [{{name: Naive}}, {{name: SeasonalMovingAverage}}]}}\noutput: {{root: {tmp_path}}}\n")
    code, out = _run(capsys, "plugins", "list", "--config", str(config), "--json")
    assert code == EXIT_OK
    rows = {row["name"]: row for row in json.loads(out.strip().splitlines()[-1])["plugins"]}
    example = rows["SeasonalMovingAverage"]
    assert (example["version"], example["distribution"], example["active"]) == ("0.1.0", "forecasting-plugin-seasonal-ma", "yes")
    assert example["owner"] == "Demand Planning Analytics (example team)"  # the class's `owner`
    assert example["tags"] == "local, conformal quantiles, smooth+intermittent, min history 1 season(s)"
    assert example["conformance"] == "not checked yet"
    assert rows["Misbehaving"]["active"] == "no" and rows["Misbehaving"]["owner"] == "platform tests"
    assert rows["Unloadable"]["conformance"].startswith("cannot load: ModuleNotFoundError")

    code, out = _run(capsys, "plugins", "list", "--config", str(config))
    header, *lines = out.strip().splitlines()
    assert header.split() == ["name", "version", "owner", "active", "conformance", "tags"]
    assert any(line.startswith("SeasonalMovingAverage  0.1.0") for line in lines)


def test_check_passes_a_conformant_plugin_and_caches_the_verdict(tmp_path, capsys):
    code, out = _run(capsys, "plugins", "check", "SeasonalMovingAverage", "--output", str(tmp_path))
    lines = out.strip().splitlines()
    assert code == EXIT_OK
    assert lines[0] == "SeasonalMovingAverage: forecasting-plugin-seasonal-ma 0.1.0, owner Demand Planning Analytics (example team)"
    assert len([line for line in lines if line.startswith("PASS  ")]) == 18
    assert lines[-1] == "18 passed, 0 failed, 0 skipped: conformant"
    assert len(list((tmp_path / "plugins").glob("SeasonalMovingAverage-*.json"))) == 1


def test_check_fails_a_broken_plugin_naming_each_check(tmp_path, capsys, fixture_plugins):
    code, out = _run(capsys, "plugins", "check", "BreaksContract", "--output", str(tmp_path), "--json")
    assert code == EXIT_FAILURE
    result = json.loads(out.strip().splitlines()[-1])
    assert {"init_stores_params_only", "no_input_mutation"} <= set(result["failed"])
    code, out = _run(capsys, "plugins", "check", "BreaksContract", "--output", str(tmp_path))
    assert code == EXIT_FAILURE
    assert any(line.startswith("FAIL  no_input_mutation") and "modified the input series" in line for line in out.splitlines())
    assert "NOT conformant: it cannot be activated" in out.splitlines()[-1]


def test_check_works_on_a_builtin_too(tmp_path, capsys):
    code, out = _run(capsys, "plugins", "check", "Naive", "--output", str(tmp_path))
    assert code == EXIT_OK
    assert "SKIP  runs_isolated             built-ins run in-process" in out
    assert out.strip().splitlines()[-1] == "17 passed, 0 failed, 1 skipped: conformant"
    assert not (tmp_path / "plugins").exists()  # built-ins have no verdict to cache


def test_check_of_an_unknown_name_is_a_configuration_error(tmp_path, capsys):
    code, _ = _run(capsys, "plugins", "check", "NoSuchModel", "--output", str(tmp_path))
    assert code == 2
