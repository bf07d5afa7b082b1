"""Which PostgreSQL serves the warehouse, and the schemas every stage writes to.

In order: ``WAREHOUSE_URL`` if set; else the server on 127.0.0.1:5432 if one answers (database
``betterwork`` is created there if missing); else an embedded PostgreSQL (the binaries that the
``pgserver`` package bundles) that the project starts in ``EMBEDDED_PG_DIR`` and leaves running,
listening on 127.0.0.1 only, until ``make stop``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pwd
import secrets
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from include import db
from include.config import OPS_DB, WAREHOUSE_DB, Settings, settings

log = logging.getLogger(__name__)

SQL_DIR = Path(__file__).parent / "sql"
EMBEDDED_OS_USER = "pgserver"  # PostgreSQL refuses to run as root; pgserver uses this user too


@dataclass(frozen=True)
class Warehouse:
    url: str
    kind: str  # "configured", "local" or "embedded"

    @property
    def ops_url(self) -> str:
        return settings().ops_database_url or db.with_database(self.url, OPS_DB)

    def psql_command(self) -> str:
        psql = shutil.which("psql") or str(_pg_bin() / "psql")
        return f'{psql} "{self.url}"'


def resolve(cfg: Settings | None = None, *, create_database: bool = True) -> Warehouse:
    """Pick the warehouse server, starting the embedded one if needed, and create its database.

    ``create_database=False`` only picks the server (tests use it to find where to create their
    throwaway databases without touching the user's warehouse).
    """
    cfg = cfg or settings()
    if cfg.warehouse_url:
        wh = Warehouse(cfg.warehouse_url, "configured")
    elif db.answers(cfg.local_pg_url):
        wh = Warehouse(db.with_database(cfg.local_pg_url, WAREHOUSE_DB), "local")
    else:
        wh = Warehouse(start_embedded(cfg), "embedded")
    if create_database:
        db.ensure_database(wh.url)
    return wh


# --------------------------------------------------------------------------- embedded server


def _pg_bin() -> Path:
    from pgserver._commands import POSTGRES_BIN_PATH

    return POSTGRES_BIN_PATH


def _embedded_url(cfg: Settings, dbname: str = WAREHOUSE_DB) -> str:
    return f"postgresql://postgres@127.0.0.1:{cfg.embedded_pg_port}/{dbname}"


def _run_as_owner(args: list[str]) -> subprocess.CompletedProcess:
    """Run a PostgreSQL binary, as the unprivileged OS user when we are root."""
    user = EMBEDDED_OS_USER if os.geteuid() == 0 else None
    return subprocess.run(args, check=True, capture_output=True, text=True, user=user)


def _prepare_root_run(pgdata: Path) -> None:
    """As root: create the OS user and let it traverse to and own the data folder."""
    from pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

    ensure_user_exists(EMBEDDED_OS_USER)
    ensure_prefix_permissions(pgdata)
    ensure_prefix_permissions(_pg_bin())
    read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
    ensure_folder_permissions(_pg_bin(), read | execute)
    ensure_folder_permissions(_pg_bin().parent / "lib", read)
    entry = pwd.getpwnam(EMBEDDED_OS_USER)
    os.chown(pgdata, entry.pw_uid, entry.pw_gid)


def start_embedded(cfg: Settings | None = None) -> str:
    """Initialise (first time) and start the embedded server; return the warehouse URL."""
    cfg = cfg or settings()
    pgdata = cfg.embedded_pg_dir
    url = _embedded_url(cfg)
    if db.answers(_embedded_url(cfg, "postgres")):
        return url
    pgdata.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        _prepare_root_run(pgdata)
    if not (pgdata / "PG_VERSION").exists():
        log.info("initialising embedded PostgreSQL in %s", pgdata)
        _run_as_owner(
            [
                str(_pg_bin() / "initdb"),
                "-D",
                str(pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ]
        )
    log.info("starting embedded PostgreSQL on 127.0.0.1:%s", cfg.embedded_pg_port)
    # TCP on loopback only, no Unix socket: socket paths have a length limit that deep checkouts hit.
    options = f"-c listen_addresses=127.0.0.1 -p {cfg.embedded_pg_port} -c unix_socket_directories=''"
    _run_as_owner(
        [
            str(_pg_bin() / "pg_ctl"),
            "-D",
            str(pgdata),
            "-l",
            str(pgdata / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        ]
    )
    return url


def stop_embedded(cfg: Settings | None = None) -> bool:
    """Stop the embedded server if it runs; return whether one was stopped."""
    cfg = cfg or settings()
    pgdata = cfg.embedded_pg_dir
    if not (pgdata / "postmaster.pid").exists():
        return False
    _run_as_owner([str(_pg_bin() / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"])
    return True


# --------------------------------------------------------------------------- schemas


def bootstrap(url: str, cfg: Settings | None = None) -> None:
    """Create the schemas and tables the pipeline writes to, and install the pseudonym key.

    Idempotent: every statement is ``create … if not exists`` or an upsert.
    """
    cfg = cfg or settings()
    ddl = (SQL_DIR / "warehouse.sql").read_text() + "\n" + (SQL_DIR / "roles.sql").read_text()
    with db.connect(url) as conn:
        # Serialise concurrent bootstraps (e.g. two DAGs starting at once) on one advisory lock.
        conn.execute("select pg_advisory_xact_lock(hashtext('betterwork.bootstrap'))")
        conn.execute(ddl)
        inner, outer = hmac_pads(pseudonym_key(cfg))
        conn.execute(
            """
            insert into private.pseudonym_key (id, inner_pad, outer_pad, fingerprint) values (1, %s, %s, %s)
            on conflict (id) do update set inner_pad = excluded.inner_pad, outer_pad = excluded.outer_pad,
                fingerprint = excluded.fingerprint, installed_at = now()
            where private.pseudonym_key.fingerprint <> excluded.fingerprint
            """,
            (inner, outer, hashlib.sha256(outer).hexdigest()[:16]),
        )
        from include import access  # logins and passwords of the reader roles, from configuration

        access.ensure_roles(conn, cfg)


def pseudonym_key(cfg: Settings) -> bytes:
    """The secret behind pseudonymous keys: ``PSEUDONYM_KEY``, else the key file (created if missing)."""
    if cfg.pseudonym_key:
        return cfg.pseudonym_key.encode()
    path = cfg.pseudonym_key_file
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_text(secrets.token_hex(32) + "\n")
        path.chmod(0o600)
        log.warning("created a new local pseudonym key in %s (keep it outside git; back it up)", path)
    return path.read_text().strip().encode()


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """HMAC-SHA256's keyed inner and outer pads (RFC 2104).

    With them the database computes a true HMAC with its built-in ``sha256()`` and no extension:
    ``sha256(outer || sha256(inner || message))``. The pads are secret like the key itself.
    """
    block = 64
    if len(key) > block:
        key = hashlib.sha256(key).digest()
    key = key.ljust(block, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)
