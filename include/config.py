"""Every setting of the platform, in one place.

Each knob is an environment variable with a documented default (the README's table lists them).
Nothing else in the code reads the environment for configuration; connections for DAG tasks come
from ``AIRFLOW_CONN_*`` variables, which :mod:`include.orchestration.connections` reads.
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
    export_max_bytes: int
    """``EXPORT_MAX_BYTES``: an export file larger than this is rejected unread (default 2 GiB)."""
    export_max_rows: int
    """``EXPORT_MAX_ROWS``: an export with more records is rejected (default 10 million)."""
    export_max_columns: int
    """``EXPORT_MAX_COLUMNS``: an export whose header has more columns is rejected (default 200)."""
    export_max_xlsx_uncompressed_bytes: int
    """``EXPORT_MAX_XLSX_UNCOMPRESSED_BYTES``: an XLSX whose parts unpack to more than this (a zip
    bomb) is rejected before it is opened (default 2 GiB)."""
    landing_min_age_seconds: float
    """``LANDING_MIN_AGE_SECONDS``: a landed file modified longer ago than this is complete; a younger
    one is taken only if its size and modification time stay the same for ``LANDING_SETTLE_SECONDS``."""
    landing_settle_seconds: float
    """``LANDING_SETTLE_SECONDS``: how long a young file must stay unchanged to be taken (default 2)."""
    xlsx_fast_max_bytes: int
    """``XLSX_FAST_MAX_BYTES``: an XLSX sheet up to this size unpacked (default 512 MiB) is read with
    python-calamine (fast; holds the sheet in memory, ~1.4× this size); a larger one is streamed with
    openpyxl (slower, memory bounded by a chunk of rows)."""
    xlsx_child_min_bytes: int
    """``XLSX_CHILD_MIN_BYTES``: a sheet read with python-calamine that is larger than this unpacked
    (default 32 MiB) is read in a child process, which holds the sheet and streams its rows back, so
    that the loading process (Airflow, Great Expectations) never holds it too."""
    site_dir: Path
    """``SITE_DIR``: the static site (staff dashboards, ``public/`` transparency page)."""
    dbt_project_dir: Path
    """``DBT_PROJECT_DIR``: the dbt project the transform builds (default ``dbt_project/``; dbt
    itself reads the same variable). Tests point it at a modified copy."""
    log_dir: Path
    """``LOG_DIR``: where ``bw run`` writes each run's full log (default ``data/logs``)."""
    airflow_database_url: str | None
    """``AIRFLOW_DATABASE_URL``: Airflow's metadata database for ``make airflow``. Unset: database
    ``bw_airflow`` on the warehouse's server."""
    executor: str
    """``EXECUTOR``: ``local`` (LocalExecutor, default) or ``celery`` (Celery workers on Redis)."""
    redis_url: str
    """``REDIS_URL``: the Celery broker of ``EXECUTOR=celery``."""
    celery_workers: int
    """``CELERY_WORKERS``: Celery worker processes ``make airflow EXECUTOR=celery`` starts (default 1)."""
    alert_smtp_url: str | None
    """``ALERT_SMTP_URL``: ``smtp://user:password@host:port`` (``smtps://`` for TLS from the start,
    ``?starttls=1`` to upgrade); or ``ALERT_SMTP_HOST``/``_PORT``/``_USER``/``_PASSWORD``."""
    alert_email_from: str
    """``ALERT_EMAIL_FROM``: sender of alert e-mails."""
    alert_email_to: tuple[str, ...]
    """``ALERT_EMAIL_TO``: comma-separated recipients of alert e-mails. Unset: no e-mail."""
    alert_webhook_url: str | None
    """``ALERT_WEBHOOK_URL``: a Slack/Teams-compatible incoming webhook (JSON ``{"text": …}``)."""
    alert_freshness_hours: float
    """``ALERT_FRESHNESS_HOURS``: a source with no rows loaded for longer alerts (default 26, dbt's
    ``warn_after`` in ``_sources.yml``)."""
    airflow_url: str
    """``AIRFLOW_URL``: the Airflow UI as people reach it, for the links in alerts."""
    quarantine_retention_days: int
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
        export_max_bytes=int(env("EXPORT_MAX_BYTES", str(2 << 30))),
        export_max_rows=int(env("EXPORT_MAX_ROWS", "10000000")),
        export_max_columns=int(env("EXPORT_MAX_COLUMNS", "200")),
        export_max_xlsx_uncompressed_bytes=int(env("EXPORT_MAX_XLSX_UNCOMPRESSED_BYTES", str(2 << 30))),
        landing_min_age_seconds=float(env("LANDING_MIN_AGE_SECONDS", "60")),
        landing_settle_seconds=float(env("LANDING_SETTLE_SECONDS", "2")),
        xlsx_fast_max_bytes=int(env("XLSX_FAST_MAX_BYTES", str(512 << 20))),
        xlsx_child_min_bytes=int(env("XLSX_CHILD_MIN_BYTES", str(32 << 20))),
        site_dir=_path(env("SITE_DIR", "data/site")),
        dbt_project_dir=_path(env("DBT_PROJECT_DIR", "dbt_project")),
        log_dir=_path(env("LOG_DIR", "data/logs")),
        airflow_database_url=env("AIRFLOW_DATABASE_URL") or None,
        executor=env("EXECUTOR", "local").strip().lower() or "local",
        redis_url=env("REDIS_URL") or "redis://127.0.0.1:6379/0",
        celery_workers=max(1, int(env("CELERY_WORKERS", "1"))),
        alert_smtp_url=env("ALERT_SMTP_URL") or _smtp_url(env),
        alert_email_from=env("ALERT_EMAIL_FROM", "betterwork-data@localhost"),
        alert_email_to=tuple(a.strip() for a in env("ALERT_EMAIL_TO", "").split(",") if a.strip()),
        alert_webhook_url=env("ALERT_WEBHOOK_URL") or None,
        alert_freshness_hours=float(env("ALERT_FRESHNESS_HOURS", "26")),
        airflow_url=(env("AIRFLOW_URL") or f"http://127.0.0.1:{env('AIRFLOW__API__PORT', '8080')}").rstrip(
            "/"
        ),
        quarantine_retention_days=int(env("QUARANTINE_RETENTION_DAYS", "90")),
    )


def _smtp_url(env) -> str | None:
    """``ALERT_SMTP_HOST``/``_PORT``/``_USER``/``_PASSWORD`` as one ``smtp://`` URL (None: no host)."""
    from urllib.parse import quote

    host = env("ALERT_SMTP_HOST")
    if not host:
        return None
    user, password = env("ALERT_SMTP_USER", ""), env("ALERT_SMTP_PASSWORD", "")
    auth = f"{quote(user, safe='')}:{quote(password, safe='')}@" if user else ""
    return f"smtp://{auth}{host}:{env('ALERT_SMTP_PORT', '25')}"
