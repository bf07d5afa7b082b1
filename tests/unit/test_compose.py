"""docker-compose.yml, checked offline (no Docker engine here): valid against the compose
specification, and wired as a team server needs it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
AIRFLOW_SERVICES = {
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-triggerer",
    "airflow-init",
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())  # resolves the x-airflow-common anchors and merges


def test_valid_against_the_compose_specification():
    checker = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_official_airflow_topology_is_there(compose):
    services = set(compose["services"])
    assert AIRFLOW_SERVICES <= services
    assert {"redis", "airflow-metadata", "warehouse"} <= services
    assert compose["services"]["airflow-worker"]["command"] == "celery worker"


def test_every_airflow_service_is_built_from_the_project_dockerfile(compose):
    images = {compose["services"][s]["image"] for s in AIRFLOW_SERVICES}
    builds = {
        (compose["services"][s]["build"]["context"], compose["services"][s]["build"]["dockerfile"])
        for s in AIRFLOW_SERVICES
    }
    assert len(images) == 1 and builds == {(".", "Dockerfile")}
    assert (ROOT / "Dockerfile").read_text().count("uv sync --frozen") >= 1


def test_airflow_services_share_one_environment(compose):
    def common(service: str) -> dict:
        env = dict(compose["services"][service]["environment"])
        env.pop("DUMB_INIT_SETSID", None)  # the worker's one documented addition
        return env

    reference = common("airflow-scheduler")
    for service in AIRFLOW_SERVICES:
        assert common(service) == reference, service
    assert reference["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert reference["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:")


def test_the_warehouse_connection_points_at_the_warehouse_service(compose):
    env = compose["services"]["airflow-scheduler"]["environment"]
    conn = urlsplit(
        env["AIRFLOW_CONN_WAREHOUSE"].replace("${WAREHOUSE_PASSWORD:?set WAREHOUSE_PASSWORD in .env}", "x")
    )
    assert conn.scheme == "postgres"
    assert conn.hostname == "warehouse"
    warehouse = compose["services"]["warehouse"]
    assert any(v.endswith(":/var/lib/postgresql/data") for v in warehouse["volumes"])
    assert warehouse["healthcheck"]["test"][0] in {"CMD", "CMD-SHELL"}
    assert (
        compose["services"]["airflow-scheduler"]["depends_on"]["warehouse"]["condition"] == "service_healthy"
    )


def test_secrets_come_from_env_and_ports_bind_loopback(compose):
    text = COMPOSE.read_text()
    env = compose["services"]["airflow-scheduler"]["environment"]
    for key in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "PSEUDONYM_KEY"):
        assert re.fullmatch(r"\$\{[A-Z_]+(:\?[^}]*)?\}", env[key]), key
    for service in compose["services"].values():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), port
    example = (ROOT / ".env.example").read_text()
    required = set(re.findall(r"\$\{([A-Z_]+):\?", text))
    documented = set(re.findall(r"^([A-Z_]+)=", example, flags=re.M))
    assert required <= documented, f"missing from .env.example: {required - documented}"
    assert ".env\n" in (ROOT / ".gitignore").read_text()
