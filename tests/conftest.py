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
# The project's output folders (data/...) are the user's: a test that does not name its own gets a
# throwaway one, per test process (so two pytest-xdist workers never share GX stores or logs).
_OUTPUTS = tempfile.mkdtemp(prefix="bwtest-outputs-")
for _var, _folder in {
    "LANDING_DIR": "landing",
    "DOCS_DIR": "docs",
    "LOG_DIR": "logs",
    "RELEASE_DIR": "releases",
    "SITE_DIR": "site",
}.items():
    os.environ.setdefault(_var, os.path.join(_OUTPUTS, _folder))

import pytest  # noqa: E402

from include import db  # noqa: E402

DEMO_RUN_GROUP = "demo_run"
"""Modules that read the shared scale-1 demo run (:func:`demo_run`) are marked with this group, so
that pytest-xdist (``make test`` runs two workers) runs them in one worker and the run happens once."""


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups into the test ids
def pytest_collection_modifyitems(config, items):
    # `make test` runs `pytest -n 2 --dist loadgroup`: a group goes to one worker whole. Every module
    # is its own group (its module-scoped pipeline runs happen once), except the modules that share
    # the session's demo run, which form one group.
    for item in items:
        if not any(m.name == "xdist_group" for m in item.iter_markers()):
            group = DEMO_RUN_GROUP if "demo_run" in item.fixturenames else item.module.__name__
            item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory, pg_server_url):
    """``bw run`` (what ``make run`` calls) once on the scale-1 demo, in throwaway databases and
    folders: real Airflow, GX, dbt and PostgreSQL. Shared by the tests that only read what a default
    run leaves (the end-to-end, dialogue and browser tests); yields the run's environment, warehouse
    URL, work folder and completed process. A test that changes the warehouse must not use it."""
    import subprocess
    import sys
    from pathlib import Path

    suffix = uuid.uuid4().hex[:8]
    warehouse_url = db.with_database(pg_server_url, f"bwtest_demo_wh_{suffix}")
    ops_url = db.with_database(pg_server_url, f"bwtest_demo_ops_{suffix}")
    work = tmp_path_factory.mktemp("demo-run")
    env = {
        **os.environ,
        "WAREHOUSE_URL": warehouse_url,
        "OPS_DATABASE_URL": ops_url,
        "LANDING_DIR": str(work / "landing"),
        "AIRFLOW_HOME": str(work / "airflow"),
        "RELEASE_DIR": str(work / "releases"),
        "DOCS_DIR": str(work / "docs"),
        "SITE_DIR": str(work / "site"),
        "LOG_DIR": str(work / "logs"),
        "PSEUDONYM_KEY": "demo-run-test-key-not-secret-0123456789abcdef",
        "DEMO": "1",
        "SCALE": "1",
    }
    bw = Path(sys.executable).with_name("bw")
    try:
        proc = subprocess.run([str(bw), "run"], env=env, capture_output=True, text=True, timeout=1500)
        yield {"env": env, "url": warehouse_url, "ops_url": ops_url, "work": work, "proc": proc}
    finally:
        db.drop_database(warehouse_url)
        db.drop_database(ops_url)


def assert_demo_run_succeeded(run: dict) -> None:
    """Fail with the end of the run's output and logs when the shared demo run failed."""
    proc = run["proc"]
    if proc.returncode != 0:
        logs = "".join(p.read_text()[-4000:] for p in (run["work"] / "logs").glob("*.log"))
        pytest.fail(
            f"`bw run` on the demo exited {proc.returncode}:\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}\n{logs}",
            pytrace=False,
        )


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
    # Quiet and offline, as in every run of the project (see include/orchestration/airflow_env.py).
    for key, value in {
        "DO_NOT_TRACK": "1",
        "GX_ANALYTICS_ENABLED": "False",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
    }.items():
        os.environ.setdefault(key, value)
