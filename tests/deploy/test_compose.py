"""docker-compose.yml against the Compose Specification's JSON schema, and the services it must run.

No docker engine is available to build or start it: this checks the file, not the image.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SCHEMA = Path(__file__).with_name("compose_spec.json")
SCHEMA_SHA256 = "0dc04bd346dcfee1b1419628fff79937bbf076925f298f272a2b490e2b112bac"
PLATFORM = ["airflow-init", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor",
            "airflow-triggerer", "dask-scheduler", "dask-worker-1", "dask-worker-2", "mlflow"]


def _interpolated(text: str) -> str:
    """Compose interpolates ``${VAR}`` / ``${VAR:?message}`` before validating; any value will do."""
    return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?[-?][^}]*)?\}", "value", text)


@pytest.fixture(scope="module")
def compose_text() -> str:
    return (PROJECT_ROOT / "docker-compose.yml").read_text()


@pytest.fixture(scope="module")
def compose(compose_text: str) -> dict:
    return yaml.safe_load(_interpolated(compose_text))


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    raw = SCHEMA.read_bytes()
    assert hashlib.sha256(raw).hexdigest() == SCHEMA_SHA256
    schema = json.loads(raw)
    assert schema["$schema"].startswith("http://json-schema.org/draft/2019-09/")
    return jsonschema.Draft201909Validator(schema)


def test_the_file_follows_the_compose_specification(compose: dict, validator) -> None:
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []


def test_the_schema_rejects_a_broken_file(compose: dict, validator) -> None:
    broken = json.loads(json.dumps(compose))
    broken["services"]["postgres"]["ports"] = {"5432": "5432"}
    broken["services"]["mlflow"]["depends_on"] = "postgres"
    broken["services"]["dask-scheduler"]["unknown_key"] = 1
    assert len(list(validator.iter_errors(broken))) >= 3


def test_the_platform_services_run_from_one_image_built_from_the_repository(compose: dict) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", *PLATFORM}
    for name in PLATFORM:
        assert services[name]["image"] == "forecasting:latest", name
        assert services[name]["build"]["context"] == ".", name
    assert (PROJECT_ROOT / "Dockerfile").exists()
    assert services["postgres"]["image"].startswith("postgres:")


def test_airflow_runs_every_component_on_postgres_with_the_local_executor(compose: dict) -> None:
    services = compose["services"]
    commands = {name: services[name]["command"][:2] for name in PLATFORM if name.startswith("airflow")}
    assert commands == {
        "airflow-init": ["airflow", "db"],
        "airflow-api-server": ["airflow", "api-server"],
        "airflow-scheduler": ["airflow", "scheduler"],
        "airflow-dag-processor": ["airflow", "dag-processor"],
        "airflow-triggerer": ["airflow", "triggerer"],
    }
    env = services["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg://")
    assert env["FORECASTING__COMPUTE__SCHEDULER_ADDRESS"] == "tcp://dask-scheduler:8786"
    workers = [services[f"dask-worker-{i}"]["command"] for i in (1, 2)]
    assert all(w[:3] == ["dask", "worker", "tcp://dask-scheduler:8786"] for w in workers)


def test_mlflow_has_authentication_and_a_postgres_backend(compose: dict) -> None:
    command = compose["services"]["mlflow"]["command"]
    assert command[command.index("--app-name") + 1] == "basic-auth"
    assert command[command.index("--backend-store-uri") + 1].startswith("postgresql+psycopg://")


def test_no_secret_is_written_in_the_file(compose_text: str) -> None:
    for line in compose_text.splitlines():
        if re.search(r"(PASSWORD|SECRET|FERNET_KEY)\s*:", line) or "://forecasting:" in line:
            assert "${" in line, f"a literal secret: {line.strip()}"
