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

from include import connections
from include.config import PROJECT_DIR, Settings

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
