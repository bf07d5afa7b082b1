"""The pipeline under Airflow's real scheduler, as ``make airflow`` runs it, in both executor modes.

Each test starts api-server, scheduler, dag-processor and triggerer (and, in Celery mode, a
Celery worker on Redis) as separate processes on free ports, with a throwaway warehouse, metadata
database and AIRFLOW_HOME; unpauses the DAGs, drops the demo's export files in the landing folder
and watches over the REST API (``/api/v2``, a JWT from the simple auth manager) that
``extract_assessments`` loads them and that its Asset event triggers ``transform``, whose Asset
event triggers ``research_release``, all successful. Then an extraction with nothing new must
trigger no transform.

To stay within a few minutes on two cores, the case-management tables are loaded once, in this
process, into a template warehouse that each test clones, and the metadata database is migrated
once into a template as well.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import pytest

from include import db
from include.config import settings
from include.orchestration import airflow_env, airflow_server

PIPELINE = ("extract_assessments", "transform", "research_release")
KEY = "scheduler-test-key-0123456789abcdef0123456789"
DONE = {"success", "failed"}


def _clone(template_url: str, label: str) -> str:
    url = db.with_database(template_url, f"bwtest_{label}_{uuid.uuid4().hex[:10]}")
    with db.connect(db.with_database(template_url, "postgres"), autocommit=True) as conn:
        # A template must have no session: end the pooled ones the loader (GX) left open here.
        conn.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity where datname = %s",
            (db.parts(template_url)["dbname"],),
        )
        conn.execute(
            f'create database "{db.parts(url)["dbname"]}" template "{db.parts(template_url)["dbname"]}"'
        )
    return url


def _drop(*urls: str) -> None:
    """Drop the databases, retrying a while: a busy shared server may refuse connections."""
    for url in urls:
        for attempt in range(10):
            try:
                db.drop_database(url)
                break
            except Exception:
                if attempt == 9:
                    raise
                time.sleep(3)


@contextmanager
def _environ(**values: str):
    with mock.patch.dict(os.environ, values):
        yield


@pytest.fixture(scope="module")
def templates(pg_server_url, tmp_path_factory):
    """A warehouse holding the demo's case-management tables, the demo's export files (not yet in
    any landing folder), the ops database, and a migrated Airflow metadata database."""
    from include import demo, load, warehouse
    from include.contract import CASE_MANAGEMENT_TABLES

    suffix = uuid.uuid4().hex[:8]
    wh = db.with_database(pg_server_url, f"bwtest_sched_wh_{suffix}")
    ops = db.with_database(pg_server_url, f"bwtest_sched_ops_{suffix}")
    meta = db.with_database(pg_server_url, f"bwtest_sched_meta_{suffix}")
    work = tmp_path_factory.mktemp("scheduler-templates")
    try:
        for url in (wh, ops, meta):
            db.ensure_database(url)
        with _environ(PSEUDONYM_KEY=KEY):
            warehouse.bootstrap(wh)
            demo.generate(work / "demo", ops, scale=1, seed=2025, only_if_empty=False)
            for table in CASE_MANAGEMENT_TABLES:
                load.load_case_management_table(wh, ops, table)
        with _environ(AIRFLOW_HOME=str(work / "airflow"), AIRFLOW_DATABASE_URL=meta, PSEUDONYM_KEY=KEY):
            env = airflow_env.server_environment(settings(), wh, ops)
        airflow_server.migrate(env)
        yield {"warehouse": wh, "ops": ops, "metadata": meta, "exports": work / "demo" / "assessments"}
    finally:
        _drop(wh, ops, meta)


@contextmanager
def _stack(templates, tmp_path: Path, executor: str, redis_url: str | None = None):
    wh = _clone(templates["warehouse"], "sched_wh")
    meta = _clone(templates["metadata"], "sched_meta")
    values = {
        "WAREHOUSE_URL": wh,
        "OPS_DATABASE_URL": templates["ops"],
        "AIRFLOW_DATABASE_URL": meta,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "LANDING_DIR": str(tmp_path / "landing"),
        "RELEASE_DIR": str(tmp_path / "releases"),
        "DOCS_DIR": str(tmp_path / "docs"),
        "PSEUDONYM_KEY": KEY,
        "DEMO": "0",
        "EXECUTOR": executor,
        "AIRFLOW__API__PORT": str(airflow_server.free_port()),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(airflow_server.free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(airflow_server.free_port()),
        # A queue of its own: other stacks on the same Redis never take this one's tasks.
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": f"bwtest-{uuid.uuid4().hex[:8]}",
    }
    if redis_url:
        values["REDIS_URL"] = redis_url
    (tmp_path / "landing" / "assessments").mkdir(parents=True)
    with _environ(**values):
        cfg = settings()
        env = airflow_env.server_environment(cfg, wh, templates["ops"])
    stack = airflow_server.Stack(env, celery_workers=1 if executor == "celery" else 0)
    try:
        started = time.monotonic()
        stack.start()
        stack.wait_healthy(timeout=240)
        print(f"{executor}: stack healthy in {time.monotonic() - started:.1f} s")
        yield stack, cfg
    finally:
        stack.stop()
        _drop(wh, meta)


def _logs(stack: airflow_server.Stack) -> str:
    """The end of each component's log, for a failure message."""
    parts = []
    for log in sorted(stack.log_dir.glob("*.log")):
        parts.append(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
    return "\n".join(parts)


def _wait_for_dag(client, dag_id: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client.get(f"/dags/{dag_id}")
            return
        except RuntimeError:
            time.sleep(2)
    raise AssertionError(f"DAG {dag_id} never appeared in the API")


def _wait_runs(stack, client, dag_id: str, count: int, timeout: float = 900) -> list[dict]:
    """Wait until ``dag_id`` has at least ``count`` finished runs; return its runs."""
    deadline = time.monotonic() + timeout
    runs: list[dict] = []
    while time.monotonic() < deadline:
        runs = client.runs(dag_id)
        if len([r for r in runs if r["state"] in DONE]) >= count:
            return runs
        if dead := stack.dead():
            raise AssertionError(f"components died: {dead}\n{_logs(stack)}")
        time.sleep(2)
    raise AssertionError(f"{dag_id}: {count} finished run(s) expected; runs: {runs}\n{_logs(stack)}")


def _wait_run(stack, client, dag_id: str, run_id: str, timeout: float = 900) -> dict:
    """Wait until the run ``run_id`` of ``dag_id`` has finished; return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = next((r for r in client.runs(dag_id) if r["dag_run_id"] == run_id), None)
        if run and run["state"] in DONE:
            return run
        if dead := stack.dead():
            raise AssertionError(f"components died: {dead}\n{_logs(stack)}")
        time.sleep(2)
    raise AssertionError(f"{dag_id} run {run_id} did not finish in {timeout:.0f} s\n{_logs(stack)}")


def _assert_succeeded(client, stack, run: dict) -> None:
    if run["state"] != "success":
        tis = client.task_instances(run["dag_id"], run["dag_run_id"])
        states = {ti["task_id"]: ti["state"] for ti in tis}
        raise AssertionError(
            f"{run['dag_id']} run {run['dag_run_id']}: {run['state']}, tasks {states}\n{_logs(stack)}"
        )


def _loaded_batches(url: str) -> int:
    with db.connect(url) as conn:
        query = "select count(*) from audit.load_batches where status = 'loaded' and rows_loaded > 0"
        return conn.execute(query).fetchone()[0]


def _scenario(stack: airflow_server.Stack, cfg, exports: Path) -> dict[str, float]:
    """Drop the export files, unpause, and follow the Asset chain; then a run with nothing new."""
    timings = {}
    client = stack.client()
    for dag_id in PIPELINE:
        _wait_for_dag(client, dag_id)
    # Consumers first, so that the producer's first Asset event finds them listening.
    client.unpause("research_release")
    client.unpause("transform")
    for f in sorted(exports.iterdir()):
        shutil.copy(f, cfg.assessments_dir / f.name)
    started = time.monotonic()
    client.unpause("extract_assessments")  # @hourly, catchup off: one run now

    extract = _wait_runs(stack, client, "extract_assessments", 1)
    _assert_succeeded(client, stack, extract[0])
    events = client.get("/assets/events?source_dag_id=extract_assessments")["asset_events"]
    assert events and all(e["source_run_id"] == extract[0]["dag_run_id"] for e in events), events

    transform = _wait_runs(stack, client, "transform", 1)
    assert len(transform) == 1, transform
    _assert_succeeded(client, stack, transform[0])
    assert transform[0]["run_type"] == "asset_triggered", transform[0]
    upstream = client.get(f"/dags/transform/dagRuns/{transform[0]['dag_run_id']}/upstreamAssetEvents")[
        "asset_events"
    ]
    assert {e["source_dag_id"] for e in upstream} == {"extract_assessments"}, upstream

    release = _wait_runs(stack, client, "research_release", 1)
    _assert_succeeded(client, stack, release[0])
    assert release[0]["run_type"] == "asset_triggered", release[0]
    timings["files to release"] = time.monotonic() - started
    assert any(Path(cfg.release_dir).iterdir()), "no release folder written"

    # Nothing new: the extraction succeeds, emits no Asset event, and no transform follows.
    loaded = _loaded_batches(cfg.warehouse_url)
    assert loaded, "the first extraction loaded nothing"
    # Followed by its run id: the @hourly schedule may add a run of its own if the hour turns.
    rerun = client.trigger("extract_assessments")["dag_run_id"]
    _assert_succeeded(client, stack, _wait_run(stack, client, "extract_assessments", rerun))
    assert _loaded_batches(cfg.warehouse_url) == loaded, "the second extraction loaded something"
    # The scheduler turns Asset events into runs within a loop or two (seconds); give it 20 s.
    time.sleep(20)
    transform = client.runs("transform")
    assert len(transform) == 1, f"an extraction with nothing new triggered a transform: {transform}"
    return timings


def test_local_executor_runs_the_asset_chain(templates, tmp_path):
    started = time.monotonic()
    with _stack(templates, tmp_path, "local") as (stack, cfg):
        assert stack.env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        assert stack.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
        timings = _scenario(stack, cfg, templates["exports"])
    print(f"local: {timings}, whole test {time.monotonic() - started:.1f} s")


@pytest.fixture
def redis_url(tmp_path):
    """Redis at REDIS_URL (default 127.0.0.1:6379); where none answers, a ``redis-server`` of our own."""
    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    if airflow_server.redis_answers(url):
        yield url
        return
    server = shutil.which("redis-server")
    if not server:
        pytest.fail(
            f"The Celery mode needs Redis: none answers at {url} and `redis-server` is not installed "
            "(apt-get install redis-server, or set REDIS_URL)."
        )
    port = airflow_server.free_port()
    proc = subprocess.Popen(
        [server, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        for _ in range(50):
            if airflow_server.redis_answers(url):
                break
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_celery_executor_runs_the_asset_chain(templates, tmp_path, redis_url):
    started = time.monotonic()
    with _stack(templates, tmp_path, "celery", redis_url) as (stack, cfg):
        assert stack.env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert stack.env["AIRFLOW__CELERY__BROKER_URL"] == redis_url
        assert "celery-worker-1" in stack.processes
        timings = _scenario(stack, cfg, templates["exports"])
        worker_log = (stack.log_dir / "celery-worker-1.log").read_text(errors="replace")
        assert "succeeded" in worker_log or "Task execute_workload" in worker_log, worker_log[-3000:]
    print(f"celery: {timings}, whole test {time.monotonic() - started:.1f} s")


TOPOLOGY = (
    "AIRFLOW__CORE__EXECUTOR",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__CELERY__WORKER_CONCURRENCY",
    "AIRFLOW__OPERATORS__DEFAULT_QUEUE",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION",
    "AIRFLOW_CONN_WAREHOUSE",
    "AIRFLOW_CONN_OPS",
    "WAREHOUSE_URL",
    "REDIS_URL",
    "AIRFLOW_URL",
)


def test_celery_mode_sets_the_variables_of_the_compose_file(tmp_path):
    """`make airflow EXECUTOR=celery` and docker-compose.yml configure Airflow with the same variables."""
    import yaml

    from include.config import PROJECT_DIR

    compose = yaml.safe_load((PROJECT_DIR / "docker-compose.yml").read_text())
    compose_env = compose["services"]["airflow-scheduler"]["environment"]
    wh = "postgresql://postgres@127.0.0.1:5432/x"
    with _environ(EXECUTOR="celery", AIRFLOW_HOME=str(tmp_path)):
        env = airflow_env.server_environment(settings(), wh, wh)
    assert [k for k in TOPOLOGY if k not in env] == []
    assert [k for k in TOPOLOGY if k not in compose_env] == []
    assert env["AIRFLOW__CORE__EXECUTOR"] == compose_env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == env["REDIS_URL"] == "redis://127.0.0.1:6379/0"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")
    assert compose_env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")
    assert (tmp_path / "secrets.json").stat().st_mode & 0o077 == 0  # generated secrets: owner only
