"""The production MLflow server settings: basic-auth app, a secret key, the admin password replaced.

Starts `mlflow server --app-name basic-auth` with deploy/mlflow/basic_auth.ini (only its
user database moved into the test's folder) and checks who gets in.
"""

from __future__ import annotations

import base64
import configparser
import secrets
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from mlflow_server import MlflowServer

from forecasting.config import load_settings

pytestmark = pytest.mark.slow

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = secrets.token_urlsafe(24)
SEARCH = "/api/2.0/mlflow/experiments/search?max_results=1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("mlflow-auth")
    config = configparser.ConfigParser()
    config.read(PROJECT_ROOT / "deploy" / "mlflow" / "basic_auth.ini")
    assert "admin_password" not in config["mlflow"]  # the password never lives in the file
    config["mlflow"]["database_uri"] = f"sqlite:///{workdir / 'basic_auth.db'}"
    ini = workdir / "basic_auth.ini"
    with open(ini, "w") as handle:
        config.write(handle)
    env = {"MLFLOW_AUTH_CONFIG_PATH": str(ini), "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
           "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(32)}
    running = MlflowServer(workdir, ("--app-name", "basic-auth"), env).start()
    yield running
    running.stop()


def _status(url: str, user: str | None = None, password: str | None = None) -> int:
    request = urllib.request.Request(url)
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_unauthenticated_and_wrong_password_requests_are_refused(server: MlflowServer):
    assert _status(server.url + SEARCH) == 401
    assert _status(server.url + SEARCH, "admin", "password1234") == 401  # MLflow's historical default
    assert _status(server.url + SEARCH, "admin", ADMIN_PASSWORD) == 200


def test_the_pipeline_reaches_the_server_with_credentials_from_the_environment(
    server: MlflowServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from mlflow.exceptions import MlflowException

    from forecasting.registry.store import ensure_store

    settings = load_settings(None, {"output": {"root": str(tmp_path)}, "registry": {"tracking_uri": server.url}})
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(MlflowException, match="401|[Uu]nauthori[sz]ed|credentials"):
        ensure_store(settings)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD)
    assert ensure_store(settings)
