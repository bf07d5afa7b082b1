"""Airflow's environment for local runs (``make run``, ``make airflow``, tests).

Airflow is configured only through environment variables here, so that nothing depends on an
``airflow.cfg`` someone edited by hand: home inside the project, no examples, no telemetry,
parallelism fit for a 2-core machine, the API on 127.0.0.1, and connections only as
``AIRFLOW_CONN_*`` variables.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from include.config import PROJECT_DIR, Settings
from include.orchestration import connections

QUIET = {
    "DO_NOT_TRACK": "1",
    "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "False",
    "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
    "GX_ANALYTICS_ENABLED": "False",
    "SCARF_ANALYTICS": "false",
}


def environment(cfg: Settings, warehouse_url: str, ops_url: str) -> dict[str, str]:
    """The process environment for Airflow commands, on top of the current one."""
    home = cfg.airflow_home
    env = dict(os.environ)
    env.update(QUIET)
    env.update(connections.export(warehouse_url, ops_url))
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_DIR / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            # 2 cores: a handful of concurrent tasks, not Airflow's default of 32 worker processes.
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "4",
            "AIRFLOW__SCHEDULER__PARSING_PROCESSES": "1",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": os.environ.get("AIRFLOW__API__PORT", "8080"),
            "AIRFLOW__COSMOS__CACHE_DIR": str(home / "cosmos"),
            "AIRFLOW__LOGGING__COLORED_CONSOLE_LOG": "False",
            # The warehouse the pipeline resolved, so that task code and dbt agree with bw run.
            "WAREHOUSE_URL": warehouse_url,
            "OPS_DATABASE_URL": ops_url,
            # `airflow standalone` starts its components as `airflow …` found on PATH.
            "PATH": os.pathsep.join(p for p in (str(Path(sys.executable).parent), env.get("PATH")) if p),
            "PYTHONPATH": os.pathsep.join(p for p in (str(PROJECT_DIR), env.get("PYTHONPATH")) if p),
        }
    )
    return env


def results_root(cfg: Settings) -> Path:
    """Where dbt's ``run_results.json`` of each Airflow dbt task is kept (include/orchestration/alerts.py)."""
    return cfg.airflow_home / "logs" / "dbt_results"


AIRFLOW_DB = "bw_airflow"
"""Airflow's metadata database for ``make airflow``, on the warehouse's server by default."""

SECRET_NAMES = ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY")
"""Secrets every component (and every worker machine) must share; created once per AIRFLOW_HOME."""


def metadata_url(cfg: Settings, warehouse_url: str) -> str:
    """Airflow's metadata database: ``AIRFLOW_DATABASE_URL``, else ``bw_airflow`` beside the warehouse."""
    from include import db

    return cfg.airflow_database_url or db.with_database(warehouse_url, AIRFLOW_DB)


def _secrets(home: Path) -> dict[str, str]:
    """The shared secrets: from the environment, else from ``$AIRFLOW_HOME/secrets.json`` (0600),
    generated there on first use. Copy that file (or set the variables) on every worker machine."""
    import json
    import secrets

    path = home / "secrets.json"
    stored = json.loads(path.read_text()) if path.exists() else {}
    if not all(stored.get(name) for name in SECRET_NAMES):
        import base64

        stored = {
            "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            **{k: v for k, v in stored.items() if v},
        }
        home.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(stored, f, indent=1)
    return {name: os.environ.get(name) or stored[name] for name in SECRET_NAMES}


def server_environment(cfg: Settings, warehouse_url: str, ops_url: str) -> dict[str, str]:
    """The environment of ``make airflow``: separate components on a PostgreSQL metadata database.

    The same variables as docker-compose.yml's ``x-airflow-common`` block (executor, metadata
    database, Celery broker and result backend, shared secrets, execution API URL), with local
    values: everything on 127.0.0.1.
    """
    from include import db

    env = environment(cfg, warehouse_url, ops_url)
    home = cfg.airflow_home
    port = env["AIRFLOW__API__PORT"]
    meta = db.parts(metadata_url(cfg, warehouse_url))
    if cfg.executor not in {"local", "celery"}:
        raise SystemExit(f"EXECUTOR={cfg.executor!r}: use 'local' or 'celery'")
    env.update(_secrets(home))
    env.update(
        {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor" if cfg.executor == "celery" else "LocalExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db.to_url(meta, scheme="postgresql+psycopg2"),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": os.environ.get(
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin"
            ),
            # Small connection pools: four long-lived components share the server with the warehouse
            # (PostgreSQL's default max_connections is 100).
            "AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_SIZE": os.environ.get(
                "AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_SIZE", "2"
            ),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_MAX_OVERFLOW": os.environ.get(
                "AIRFLOW__DATABASE__SQL_ALCHEMY_MAX_OVERFLOW", "4"
            ),
            # A busy 2-core machine parses the Cosmos DAGs slowly: more than Airflow's 30 s default.
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": os.environ.get(
                "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT", "120"
            ),
            "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT": os.environ.get(
                "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT", "180"
            ),
            # One API worker process, not four: a 2-core machine.
            "AIRFLOW__API__WORKERS": os.environ.get("AIRFLOW__API__WORKERS", "1"),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW_URL": cfg.airflow_url,
        }
    )
    if cfg.executor == "celery":
        env.update(
            {
                "REDIS_URL": cfg.redis_url,
                "AIRFLOW__CELERY__BROKER_URL": cfg.redis_url,
                "AIRFLOW__OPERATORS__DEFAULT_QUEUE": os.environ.get(
                    "AIRFLOW__OPERATORS__DEFAULT_QUEUE", "default"
                ),
                "AIRFLOW__CELERY__RESULT_BACKEND": db.to_url(meta, scheme="db+postgresql"),
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": os.environ.get(
                    "AIRFLOW__CELERY__WORKER_CONCURRENCY", "2"
                ),
            }
        )
    return env
