"""The two database connections of the pipeline, read the way Airflow reads them.

Airflow connections come only from environment variables: ``AIRFLOW_CONN_WAREHOUSE`` and
``AIRFLOW_CONN_OPS`` (URI form, ``postgres://user:password@host:port/dbname``). ``bw run`` and
``make airflow`` set them from the configuration; on a team server docker-compose sets them. Task
code calls these functions instead of parsing URLs itself.
"""

from __future__ import annotations

import os

from include import db

WAREHOUSE_CONN_ID = "warehouse"
OPS_CONN_ID = "ops"


def _env_name(conn_id: str) -> str:
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def url(conn_id: str) -> str:
    """A libpq URL (``postgresql://…``) for an Airflow connection defined in the environment."""
    value = os.environ.get(_env_name(conn_id))
    if not value:
        raise RuntimeError(
            f"connection {conn_id!r} is not configured: set {_env_name(conn_id)} "
            "(bw run and make airflow set it from WAREHOUSE_URL / OPS_DATABASE_URL)"
        )
    return db.to_url(db.parts(value.replace("postgres://", "postgresql://", 1)))


def warehouse_url() -> str:
    return url(WAREHOUSE_CONN_ID)


def ops_url() -> str:
    return url(OPS_CONN_ID)


def export(warehouse: str, ops: str) -> dict[str, str]:
    """Environment variables that define both connections (Airflow's ``postgres://`` URI form)."""
    return {
        _env_name(WAREHOUSE_CONN_ID): db.to_url(db.parts(warehouse), scheme="postgres"),
        _env_name(OPS_CONN_ID): db.to_url(db.parts(ops), scheme="postgres"),
    }
