"""Which PostgreSQL serves the warehouse, and the schemas every stage writes to.

In order: ``WAREHOUSE_URL`` if set; else the server on 127.0.0.1:5432 if one answers (database
``betterwork`` is created there if missing); else an embedded PostgreSQL (the binaries that the
``pgserver`` package bundles) that the project starts in ``EMBEDDED_PG_DIR`` and leaves running,
listening on 127.0.0.1 only, until ``make stop``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import pwd
import random
import secrets
import shutil
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

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
        """How to reach the warehouse with psql, without its password (printed by ``make run``)."""
        psql = shutil.which("psql") or str(_pg_bin() / "psql")
        bare = db.redact(self.url).replace(":***@", "@")
        if self.kind == "embedded":  # its generated password is in a pgpass file under .secrets/
            return f'PGPASSFILE={pgpass_file(settings())} {psql} "{bare}"'
        return f'{psql} "{bare}"'


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


def secrets_dir(cfg: Settings) -> Path:
    """``.secrets/`` beside the embedded server's folder (git-ignored): its password, a pgpass file."""
    return cfg.embedded_pg_dir.parent / ".secrets"


def pgpass_file(cfg: Settings) -> Path:
    return secrets_dir(cfg) / "pgpass"


def embedded_password(cfg: Settings, *, create: bool = False) -> str | None:
    """The embedded server's generated superuser password (``.secrets/embedded-pg.password``)."""
    path = secrets_dir(cfg) / "embedded-pg.password"
    if not path.exists():
        if not create:
            return None
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(24) + "\n")
    password = path.read_text().strip()
    # a pgpass file, so that the printed psql command needs no password on its command line
    pgpass = pgpass_file(cfg)
    line = f"127.0.0.1:{cfg.embedded_pg_port}:*:postgres:{password}\n"
    if not pgpass.exists() or pgpass.read_text() != line:
        fd = os.open(pgpass, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(line)
    return password


def _embedded_url(cfg: Settings, dbname: str = WAREHOUSE_DB) -> str:
    password = embedded_password(cfg)
    auth = f"postgres:{password}" if password else "postgres"
    return db.to_url(db.parts(f"postgresql://{auth}@127.0.0.1:{cfg.embedded_pg_port}/{dbname}"))


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
    if db.answers(_embedded_url(cfg, "postgres")):
        _require_password(cfg)
        return _embedded_url(cfg)
    pgdata.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        _prepare_root_run(pgdata)
    if not (pgdata / "PG_VERSION").exists():
        log.info("initialising embedded PostgreSQL in %s", pgdata)
        password = embedded_password(cfg, create=True)
        # initdb reads the password from a file the server's OS user can read, removed at once.
        pwfile = pgdata / ".initdb-pw"
        pwfile.write_text(password + "\n")
        if os.geteuid() == 0:
            entry = pwd.getpwnam(EMBEDDED_OS_USER)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        pwfile.chmod(0o600)
        tmp = pgdata / "cluster"
        try:
            _run_as_owner(
                [
                    str(_pg_bin() / "initdb"),
                    "-D",
                    str(tmp),
                    "-U",
                    "postgres",
                    "--auth=scram-sha-256",  # no trust: every local user would be the superuser
                    f"--pwfile={pwfile}",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ]
            )
        finally:
            pwfile.unlink(missing_ok=True)
        for item in tmp.iterdir():  # initdb wants an empty folder; ours held the password file
            item.rename(pgdata / item.name)
        tmp.rmdir()
        pgdata.chmod(0o700)  # as initdb leaves its folder: PostgreSQL refuses a wider one

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
    _require_password(cfg)
    return _embedded_url(cfg)


def _require_password(cfg: Settings) -> None:
    """A server initialised by an earlier version trusted every local user: give it a password."""
    if embedded_password(cfg) is not None:
        return
    password = embedded_password(cfg, create=True)
    trusted = f"postgresql://postgres@127.0.0.1:{cfg.embedded_pg_port}/postgres"
    with db.connect(trusted, autocommit=True) as conn:
        from include.serve import access

        access.set_login(conn, "postgres", password)
        hba = Path(conn.execute("show hba_file").fetchone()[0])
        hba.write_text(hba.read_text().replace(" trust", " scram-sha-256"))
        conn.execute("select pg_reload_conf()")
    log.info("embedded PostgreSQL: trust replaced by a generated password in %s", secrets_dir(cfg))


def stop_embedded(cfg: Settings | None = None) -> bool:
    """Stop the embedded server if it runs; return whether one was stopped."""
    cfg = cfg or settings()
    pgdata = cfg.embedded_pg_dir
    if not (pgdata / "postmaster.pid").exists():
        return False
    _run_as_owner([str(_pg_bin() / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"])
    return True


# --------------------------------------------------------------------------- schemas


class PseudonymKeyError(RuntimeError):
    """The pseudonym key is missing, too weak, or not the one the warehouse's pseudonyms were made with."""


class PseudonymKeyMissing(PseudonymKeyError):
    """No key configured and no key file."""


MIN_KEY_BYTES = 32
PLACEHOLDER_KEYS = frozenset(
    {"change-me", "changeme", "change_me", "changeit", "secret", "password", "pseudonym-key", "xxx", "todo"}
)
"""Values that stand for "put a key here" (``.env.example``'s ``change-me`` among them)."""


def check_key(key: bytes) -> bytes:
    """``key`` if it may serve as the pseudonym key; else :class:`PseudonymKeyError`."""
    text = key.decode(errors="replace").strip().lower()
    if text in PLACEHOLDER_KEYS or any(p in text for p in ("change-me", "changeme", "replace-me")):
        raise PseudonymKeyError(
            "the pseudonym key is a placeholder: put a secret of at least 32 random bytes in "
            "PSEUDONYM_KEY or the key file (python3 -c 'import secrets; print(secrets.token_hex(32))')"
        )
    if len(key) < MIN_KEY_BYTES:
        raise PseudonymKeyError(
            f"the pseudonym key has {len(key)} bytes; at least {MIN_KEY_BYTES} are required "
            "(python3 -c 'import secrets; print(secrets.token_hex(32))')"
        )
    return key


def fingerprint(key: bytes) -> str:
    """What the warehouse stores about the key: identifies it, cannot give it back."""
    digest = hmac.new(key, b"betterwork pseudonym key fingerprint", hashlib.sha256).hexdigest()
    return "hmac-sha256:" + digest[:16]


def _legacy_fingerprint(key: bytes) -> str:
    """The fingerprint earlier versions stored beside the pads (sha256 of the outer pad)."""
    return hashlib.sha256(hmac_pads(key)[1]).hexdigest()[:16]


def installed_fingerprint(conn) -> str | None:
    row = conn.execute("select fingerprint from private.pseudonym_key where id = 1").fetchone()
    return row[0] if row else None


def _installed_at(url: str) -> str | None:
    """The warehouse's fingerprint; None when it has none yet or does not answer (dbt parse)."""
    import psycopg

    try:
        with db.connect(url, connect_timeout=5) as conn:
            return installed_fingerprint(conn)
    except (psycopg.OperationalError, psycopg.errors.UndefinedTable):
        return None


def _mismatch(cfg: Settings, installed: str, key: bytes) -> PseudonymKeyError:
    where = "PSEUDONYM_KEY" if cfg.pseudonym_key else str(cfg.pseudonym_key_file)
    return PseudonymKeyError(
        f"the pseudonym key in {where} (fingerprint {fingerprint(key)}) is not the key this warehouse's "
        f"pseudonyms were made with (fingerprint {installed}). Restore the original key; or, to change "
        "every pseudonym on purpose (earlier releases will no longer link), run `bw rotate-key`."
    )


def bootstrap(url: str, cfg: Settings | None = None) -> None:
    """Create the schemas and tables the pipeline writes to; check (or install) the key's fingerprint.

    Idempotent: every statement is ``create … if not exists`` or an upsert. The first bootstrap of a
    warehouse records the key's fingerprint (creating a local key file if none is configured);
    later ones fail with :class:`PseudonymKeyError` when the key is missing or another one.
    """
    cfg = cfg or settings()
    for attempt in range(1, _CATALOG_RACE_TRIES + 1):
        try:
            return _bootstrap_once(url, cfg)
        except (psycopg.errors.InternalError_, psycopg.errors.UniqueViolation) as err:
            # The roles are the server's, not the database's: a bootstrap of another warehouse on
            # the same server (the advisory lock below is per database) may change them at the same
            # moment ("tuple concurrently updated", a role created twice). The transaction rolled
            # back whole; every statement is idempotent, so it is simply run again.
            if attempt == _CATALOG_RACE_TRIES or not _is_catalog_race(err):
                raise
            time.sleep(0.2 * attempt + random.random() * 0.3)


_CATALOG_RACE_TRIES = 5


def _is_catalog_race(err: Exception) -> bool:
    text = str(err)
    return "concurrently" in text or "pg_authid" in text or "pg_auth_members" in text


def _bootstrap_once(url: str, cfg: Settings) -> None:
    ddl = (SQL_DIR / "warehouse.sql").read_text() + "\n" + (SQL_DIR / "roles.sql").read_text()
    with db.connect(url) as conn:
        # Serialise concurrent bootstraps (e.g. two DAGs starting at once) on one advisory lock.
        conn.execute("select pg_advisory_xact_lock(hashtext('betterwork.bootstrap'))")
        conn.execute(ddl)
        installed = installed_fingerprint(conn)
        # A new key only for a warehouse without pseudonyms: never silently replace the key.
        key = pseudonym_key(cfg, create=installed is None)
        if installed is None:
            conn.execute(
                "insert into private.pseudonym_key (id, fingerprint) values (1, %s)", (fingerprint(key),)
            )
        elif installed == _legacy_fingerprint(key):
            conn.execute(
                "update private.pseudonym_key set fingerprint = %s where id = 1", (fingerprint(key),)
            )
        elif installed != fingerprint(key):
            raise _mismatch(cfg, installed, key)
        from include.serve import access  # logins and passwords of the reader roles, from configuration

        access.ensure_roles(conn, cfg)


def rotate_key(url: str, cfg: Settings | None = None, *, generate: bool = False) -> tuple[str | None, str]:
    """Make the configured key the warehouse's key (a deliberate change of every pseudonym).

    With ``generate`` and no key configured, a new key file is written first (an existing file is
    never overwritten). Returns the old and the new fingerprint. The next build must rebuild every
    table holding pseudonyms (``make run`` does: dbt tables are rebuilt; see docs/ACCESS.md).
    """
    cfg = cfg or settings()
    key = pseudonym_key(cfg, create=generate)
    with db.connect(url) as conn:
        conn.execute("select pg_advisory_xact_lock(hashtext('betterwork.bootstrap'))")
        conn.execute((SQL_DIR / "warehouse.sql").read_text())
        old = installed_fingerprint(conn)
        conn.execute(
            """
            insert into private.pseudonym_key (id, fingerprint) values (1, %s)
            on conflict (id) do update set fingerprint = excluded.fingerprint, installed_at = now()
            """,
            (fingerprint(key),),
        )
        # Tables holding pseudonyms of the old key go: the next build makes them anew with the new
        # key (an incremental model would otherwise keep old pseudonyms beside new ones).
        held = conn.execute(
            """
            select distinct format('%I.%I', c.table_schema, c.table_name)
            from information_schema.columns as c
            join information_schema.tables as t using (table_schema, table_name)
            where c.table_schema in ('staging', 'intermediate', 'marts', 'research', 'snapshots')
              and t.table_type = 'BASE TABLE'
              and c.column_name in ('person_key', 'factory_key', 'session_key', 'participation_key')
            """
        ).fetchall()
        for (table,) in held:
            conn.execute(f"drop table if exists {table} cascade")
        log.warning("dropped %d tables holding pseudonyms; the next build rebuilds them", len(held))
    log.warning(
        "pseudonym key rotated: %s -> %s; every pseudonym changes at the next build", old, fingerprint(key)
    )
    return old, fingerprint(key)


def pseudonym_key(cfg: Settings | None = None, *, create: bool = False) -> bytes:
    """The secret behind pseudonymous keys: ``PSEUDONYM_KEY``, else the key file.

    The file is created (256 random bits, mode 600) only when ``create`` is true: the first
    bootstrap of a warehouse, or ``bw rotate-key --generate``. Keys shorter than 32 bytes or equal
    to a placeholder are refused (:class:`PseudonymKeyError`).
    """
    cfg = cfg or settings()
    if cfg.pseudonym_key:
        return check_key(cfg.pseudonym_key.strip().encode())
    path = cfg.pseudonym_key_file
    if not path.exists():
        if not create:
            raise PseudonymKeyMissing(
                f"no pseudonym key: PSEUDONYM_KEY is unset and {path} does not exist. Restore the key "
                "file from its backup (a new key would change every pseudonym; if that is intended, "
                "run `bw rotate-key --generate`)."
            )
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
        log.warning("created a new local pseudonym key in %s (keep it outside git; back it up)", path)
    return check_key(path.read_text().strip().encode())


def key_options(cfg: Settings | None = None, url: str | None = None) -> str:
    """libpq ``options`` that give a session the key's HMAC pads (``private.pseudonym`` reads them).

    Session settings only: not stored, not in any statement or log. With ``url``, the key is first
    checked against the warehouse's fingerprint (:class:`PseudonymKeyError` if it differs).
    """
    cfg = cfg or settings()
    key = pseudonym_key(cfg)
    if url is not None:
        installed = _installed_at(url)
        if installed is not None and installed != fingerprint(key):
            raise _mismatch(cfg, installed, key)
    inner, outer = hmac_pads(key)
    return f"-c betterwork.pseudonym_inner_pad={inner.hex()} -c betterwork.pseudonym_outer_pad={outer.hex()}"


def key_env(cfg: Settings | None = None, url: str | None = None) -> dict[str, str]:
    """Environment for dbt: libpq reads ``PGOPTIONS`` (the profile sets no ``search_path``, which
    would replace it), so every dbt session can compute pseudonyms. See :func:`key_options`."""
    return {"PGOPTIONS": key_options(cfg, url)}


def connect_keyed(url: str, cfg: Settings | None = None, **kwargs):
    """A connection whose session can compute ``private.pseudonym`` (tests, one-off queries)."""
    return db.connect(url, options=key_options(cfg), **kwargs)


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """HMAC-SHA256's keyed inner and outer pads (RFC 2104).

    With them the database computes a true HMAC with its built-in ``sha256()`` and no extension:
    ``sha256(outer || sha256(inner || message))``. The pads are secret like the key itself: they
    are only ever session settings (:func:`key_options`), never stored.
    """
    block = 64
    if len(key) > block:
        key = hashlib.sha256(key).digest()
    key = key.ljust(block, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)
