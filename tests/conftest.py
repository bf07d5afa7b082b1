"""Shared fixtures: throwaway PostgreSQL databases that the test session creates and drops.

Tests never touch the user's warehouse. The server is the one the pipeline would pick
(``WAREHOUSE_URL``'s server, else 127.0.0.1:5432, else the embedded one); each database gets a
unique ``bwtest_`` name and is dropped, sessions and all, when the test ends.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator

# Before anything imports Airflow: a throwaway home, never the project's or the user's.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="bwtest-airflow-")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", os.path.join(os.path.dirname(__file__), "..", "dags"))

import pytest  # noqa: E402

from include import db  # noqa: E402


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """A URL of the test server (its ``postgres`` database)."""
    from include import warehouse

    return db.with_database(warehouse.resolve(create_database=False).url, "postgres")


def _throwaway(server_url: str, label: str) -> Iterator[str]:
    url = db.with_database(server_url, f"bwtest_{label}_{uuid.uuid4().hex[:10]}")
    db.ensure_database(url)
    try:
        yield url
    finally:
        db.drop_database(url)


@pytest.fixture
def fresh_database(pg_server_url: str) -> Iterator[str]:
    """URL of a new, empty database, dropped after the test."""
    yield from _throwaway(pg_server_url, "wh")


@pytest.fixture
def fresh_ops_database(pg_server_url: str) -> Iterator[str]:
    """URL of a second empty database, for a case-management source."""
    yield from _throwaway(pg_server_url, "ops")


@pytest.fixture
def warehouse_db(fresh_database: str, tmp_path, monkeypatch) -> str:
    """A throwaway warehouse with the pipeline's schemas and a test pseudonym key installed."""
    from include import warehouse

    monkeypatch.setenv("PSEUDONYM_KEY", "test-key-not-secret-0123456789abcdef")
    warehouse.bootstrap(fresh_database)
    return fresh_database


def pytest_configure(config):
    # Quiet and offline, as in every run of the project (see include/airflow_env.py).
    for key, value in {
        "DO_NOT_TRACK": "1",
        "GX_ANALYTICS_ENABLED": "False",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
    }.items():
        os.environ.setdefault(key, value)
