"""Hostile plug-ins (tests/plugins/fixtures/misbehaving, installed) against the real console script.

The conformance kit and training run plug-in code in the sandbox: a plug-in that exits, hangs,
opens sockets, reads the environment or leaves its process group costs itself its checks or its
candidacy, never the command, and reaches no network, no credentials and no process beyond its own.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONSOLE_SCRIPT = Path(sys.executable).with_name("forecasting")
ESCAPEE_TOKEN = "forecasting-test-escapee"
SECRETS = {
    "FORECASTING_DATABASE_URL": "postgresql+psycopg://forecasting:db-password-1234@db:5432/forecasting",
    "MLFLOW_TRACKING_PASSWORD": "mlflow-password-5678",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-9012",
    "SOME_SERVICE_TOKEN": "token-3456",
}


def _cli(site: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FORECASTING")}
    environment.update(PYTHONPATH=str(site), **(env or {}))
    return subprocess.run([str(CONSOLE_SCRIPT), *args], cwd=PROJECT_ROOT, env=environment, capture_output=True,
                          text=True, timeout=timeout)


def _last_json(completed: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    lines = completed.stdout.strip().splitlines()
    assert lines, f"no JSON line; exit {completed.returncode}; stderr: {completed.stderr[-2000:]}"
    return json.loads(lines[-1])


def _config(tmp_path: Path, candidates: str, plugins: str = "", verdicts: Path | None = None) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        "demo: {n_series: 10, n_periods: 60}\n"
        "forecast: {horizon: 4, season_length: 4}\n"
        f"models: {{candidates: [{candidates}], fallback: [Naive]}}\n"
        "ensemble: {enabled: false}\n"
        f"plugins: {{verdict_cache: {verdicts or tmp_path / 'verdicts'}{plugins}}}\n"
        "compute: {executor: serial, n_shards: 1, progress: false}\n"
        f"output: {{root: {tmp_path / 'out'}}}\n"
        "registry: {enabled: false}\nreporting: {enabled: false}\ndatabase: {enabled: false}\n"
    )
    return config


def _escapees() -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if ESCAPEE_TOKEN.encode() in cmdline:
                found.append(int(entry))
    return found


def _target(site: Path, content: dict[str, Any]) -> None:
    (site / "misbehaving_models" / "target.json").write_text(json.dumps(content))


def test_a_plugin_that_exits_fails_its_checks_and_is_refused_by_a_run(tmp_path, fixture_plugins):
    checked = _cli(fixture_plugins, "plugins", "check", "ExitsAtFit", "--output", str(tmp_path), "--json")
    assert checked.returncode == 1, checked.stderr[-2000:]
    result = _last_json(checked)
    reasons = {r["check"]: r["reason"] for r in result["results"] if r["status"] == "fail"}
    assert "the plug-in's process died (exit code 7)" in reasons["clone_unfitted"]
    assert {"template_methods", "tags_valid", "not_fitted_error"}.isdisjoint(reasons)  # checks that never fit pass

    # The run finds the verdict `plugins check` cached (the kit in the sandbox is the check above; the
    # secrets test below has runs compute their verdicts) and refuses the plug-in before any work.
    config = _config(tmp_path, "{name: Naive}, {name: ExitsAtFit}", verdicts=tmp_path / "plugins")
    ran = _cli(fixture_plugins, "run", "--config", str(config), "--json")
    assert ran.returncode == 2, ran.stderr[-2000:]
    error = _last_json(ran)
    assert error["error_type"] == "PluginNotConformantError"
    assert "plug-in 'ExitsAtFit'" in error["error"] and "exit code 7" in error["error"]


def test_a_plugin_that_hangs_fails_its_checks_within_its_time_limit(tmp_path, fixture_plugins):
    config = _config(tmp_path, "{name: Naive}", ", limits: {HangsAtFit: {timeout_seconds: 2}}")
    started = time.monotonic()
    checked = _cli(fixture_plugins, "plugins", "check", "HangsAtFit", "--config", str(config), "--json", timeout=240)
    assert checked.returncode == 1, checked.stderr[-2000:]
    reasons = {r["check"]: r["reason"] for r in _last_json(checked)["results"] if r["status"] == "fail"}
    assert reasons["clone_unfitted"] == "no result within 2 s (the plug-in's process was killed)"
    assert reasons["real_backtest"].startswith("not run: the plug-in's process died or hung in 2 checks in a row")
    assert time.monotonic() - started < 200


def test_the_kit_gives_a_plugin_no_network(tmp_path, fixture_plugins):
    accepted: list[socket.socket] = []
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(0.2)
        stop = threading.Event()

        def accept() -> None:
            while not stop.is_set():
                try:
                    accepted.append(server.accept()[0])
                except TimeoutError:
                    continue

        listener = threading.Thread(target=accept)
        listener.start()
        _target(fixture_plugins, {"port": server.getsockname()[1]})
        with socket.create_connection(server.getsockname(), timeout=5):
            time.sleep(0.5)  # the listener does accept this process's connections
        reached = len(accepted)
        checked = _cli(fixture_plugins, "plugins", "check", "Connects", "--output", str(tmp_path), "--json")
        stop.set()
        listener.join()
    assert reached == 1
    assert checked.returncode == 0, checked.stderr[-2000:]
    assert len(accepted) == 1, f"the plug-in connected {len(accepted) - 1} time(s)"


def test_plugin_code_sees_no_secrets_a_private_folder_and_leaves_no_process(tmp_path, fixture_plugins):
    dumps = tmp_path / "seen"
    dumps.mkdir()
    _target(fixture_plugins, {"dump_dir": str(dumps)})
    assert _escapees() == []
    config = _config(tmp_path, "{name: Naive}, {name: Snoops}, {name: Escapes}")
    ran = _cli(fixture_plugins, "run", "--config", str(config), "--json", env=SECRETS)
    assert ran.returncode == 0, ran.stderr[-2000:]
    ledger = __import__("pandas").read_parquet(_last_json(ran)["ledger"])
    assert set(ledger["winner"]) & {"Snoops", "Escapes"}, "the plug-ins took part in the run"

    seen = [json.loads(p.read_text()) for p in dumps.iterdir()]
    assert len(seen) > 10  # the kit's children (activation) and the training children
    for record in seen:
        text = json.dumps(record["environ"])
        leaked = [name for name, value in SECRETS.items() if name in text or value in text]
        assert not leaked, f"a plug-in saw {leaked}"
        assert not any(k.startswith(("FORECASTING__", "MLFLOW_", "AWS_")) for k in record["environ"])
        cwd = Path(record["cwd"])
        assert cwd.name.startswith("forecasting-plugin-") and cwd != PROJECT_ROOT
        assert record["environ"]["HOME"] == record["environ"]["TMPDIR"] == str(cwd)
        assert not cwd.exists(), "the private folder is removed afterwards"

    time.sleep(0.5)
    left = _escapees()
    assert left == [], f"{len(left)} process(es) that plug-in code started outlived the run"
