"""Every setting of the platform, in one place.

Each knob is an environment variable with a documented default (the README's table lists them).
Nothing else in the code reads the environment for configuration; connections for DAG tasks come
from ``AIRFLOW_CONN_*`` variables, which :mod:`include.connections` reads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
"""The project checkout: relative paths in settings are resolved against it."""

WAREHOUSE_DB = "betterwork"
"""Database created on an auto-detected or embedded server."""

OPS_DB = "bw_ops"
"""Default case-management database, on the warehouse's server."""


def _path(value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else PROJECT_DIR / path


def _flag(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """A snapshot of the configuration, read from the environment by :func:`settings`."""

    warehouse_url: str | None
    """``WAREHOUSE_URL``: the warehouse. Unset: 127.0.0.1:5432 if it answers, else embedded."""
    ops_database_url: str | None
    """``OPS_DATABASE_URL``: the case-management database. Unset: ``bw_ops`` beside the warehouse."""
    landing_dir: Path
    """``LANDING_DIR``: where source files land (``assessments/`` below it)."""
    demo: bool
    """``DEMO``: 1 generates demo sources where the landing zone and ops database are empty."""
    demo_scale: int
    """``SCALE``: demo size multiplier (1 = Better Work Pakistan as reported in 2025)."""
    demo_seed: int
    """``DEMO_SEED``: seed of the demo generator; the same seed writes the same sources."""
    local_pg_url: str
    """``LOCAL_PG_URL``: the server probed when ``WAREHOUSE_URL`` is unset."""
    embedded_pg_dir: Path
    """``EMBEDDED_PG_DIR``: data folder of the embedded PostgreSQL."""
    embedded_pg_port: int
    """``EMBEDDED_PG_PORT``: port the embedded PostgreSQL listens on, on 127.0.0.1 only."""
    pseudonym_key_file: Path
    """``PSEUDONYM_KEY_FILE``: secret for pseudonymous keys, created locally if missing."""
    pseudonym_key: str | None
    """``PSEUDONYM_KEY``: the secret itself (takes precedence over the file)."""
    suppression_k: int
    """``SUPPRESSION_K``: research cells built from fewer factories are suppressed."""
    release_dir: Path
    """``RELEASE_DIR``: where research releases are written."""
    analyst_password: str | None
    """``ANALYST_PASSWORD``: password of the ``analyst`` login (staff, BI). Unset: left as it is
    (a new role has none, so only the server's non-password methods, e.g. local trust, let it in)."""
    researcher_password: str | None
    """``RESEARCHER_PASSWORD``: password of the ``researcher`` login. Unset: as ``ANALYST_PASSWORD``."""
    docs_dir: Path
    """``DOCS_DIR``: static sites (GX Data Docs, dbt docs)."""
    airflow_home: Path
    """``AIRFLOW_HOME``: Airflow's metadata and logs, inside the project by default."""
    extract_lookback_minutes: int
    """``EXTRACT_LOOKBACK_MINUTES``: case-management rows changed this long before the watermark are
    re-read (default 10), so rows committed late are not missed; versions already loaded are skipped."""
    validation_threads: int
    """``VALIDATION_THREADS``: GX validations of one table run on this many connections at once
    (default 2, one per core of the reference machine); 1 runs them one after another."""
    quarantine_retention_days: int = 90
    """``QUARANTINE_RETENTION_DAYS``: quarantined rows of source tables holding personal data are
    deleted this many days after they were quarantined (default 90), on each run of that table."""

    @property
    def assessments_dir(self) -> Path:
        return self.landing_dir / "assessments"


def settings() -> Settings:
    """Read the configuration from the environment (cheap; call it where needed)."""
    env = os.environ.get
    return Settings(
        warehouse_url=env("WAREHOUSE_URL") or None,
        ops_database_url=env("OPS_DATABASE_URL") or None,
        landing_dir=_path(env("LANDING_DIR", "data/landing")),
        demo=_flag(env("DEMO", "1")),
        demo_scale=int(env("SCALE", "1")),
        demo_seed=int(env("DEMO_SEED", "2025")),
        local_pg_url=env("LOCAL_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        embedded_pg_dir=_path(env("EMBEDDED_PG_DIR", ".pgdata")),
        embedded_pg_port=int(env("EMBEDDED_PG_PORT", "5433")),
        pseudonym_key_file=_path(env("PSEUDONYM_KEY_FILE", ".secrets/pseudonym.key")),
        pseudonym_key=env("PSEUDONYM_KEY") or None,
        suppression_k=int(env("SUPPRESSION_K", "5")),
        release_dir=_path(env("RELEASE_DIR", "data/releases")),
        analyst_password=env("ANALYST_PASSWORD") or None,
        researcher_password=env("RESEARCHER_PASSWORD") or None,
        docs_dir=_path(env("DOCS_DIR", "data/docs")),
        airflow_home=_path(env("AIRFLOW_HOME", ".airflow")),
        extract_lookback_minutes=int(env("EXTRACT_LOOKBACK_MINUTES", "10")),
        validation_threads=max(1, int(env("VALIDATION_THREADS", "2"))),
        quarantine_retention_days=int(env("QUARANTINE_RETENTION_DAYS", "90")),
    )
