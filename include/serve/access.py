"""Database roles and how people log in as them.

``include/sql/roles.sql`` creates the four roles (NOLOGIN) and their schema grants; dbt's ``grants``
config gives table-level SELECT on every build. This module adds what depends on configuration:

- ``analyst`` and ``researcher`` are people (staff and BI tools; academic partners): they get
  LOGIN, a ``search_path`` of their one schema in this database, and, when ``ANALYST_PASSWORD`` /
  ``RESEARCHER_PASSWORD`` is set, that password (sent to the server as a SCRAM verifier computed
  client-side, so the clear text never appears in a statement or a server log). When unset, the
  password is left as it is: a DBA may manage it with ``\\password``; a new role has none, so only
  the server's non-password methods (``trust`` on a developer machine) let it in.
- ``loader`` and ``transformer`` stay NOLOGIN: pipeline sessions ``SET ROLE`` to them (and to
  ``researcher`` for releases), so the connecting user must be a member (superusers are; a
  non-superuser gets the membership here, which needs CREATEROLE or admin rights on the roles).
"""

from __future__ import annotations

import logging

import psycopg
from psycopg import sql

from include import db
from include.config import Settings, settings

log = logging.getLogger(__name__)

PIPELINE_ROLES = ("loader", "transformer", "researcher")
"""Roles the pipeline's login must be a member of to ``SET ROLE``: loads, dbt, releases (which read
as ``researcher``, so a release holds only what a researcher may see)."""
READER_SCHEMAS = {"analyst": "marts", "researcher": "research"}
"""Each reader role and the one schema it may read."""


def ensure_roles(conn_or_url: psycopg.Connection | str, cfg: Settings | None = None) -> None:
    """Give the reader roles their login and the pipeline user its role memberships. Idempotent.

    Runs after ``roles.sql`` (which creates the roles), as the bootstrap's user.
    """
    cfg = cfg or settings()
    passwords = {"analyst": cfg.analyst_password, "researcher": cfg.researcher_password}
    if isinstance(conn_or_url, str):
        with db.connect(conn_or_url, autocommit=True) as conn:
            _ensure(conn, passwords)
    else:
        _ensure(conn_or_url, passwords)


def _ensure(conn: psycopg.Connection, passwords: dict[str, str | None]) -> None:
    dbname = conn.execute("select current_database()").fetchone()[0]
    for role, schema in READER_SCHEMAS.items():
        set_login(conn, role, passwords[role])
        # Unqualified names (BI tools, psql) resolve in the role's own schema of this database.
        conn.execute(
            sql.SQL("alter role {} in database {} set search_path = {}").format(
                sql.Identifier(role), sql.Identifier(dbname), sql.Identifier(schema)
            )
        )
    superuser, me = conn.execute(
        "select rolsuper, current_user from pg_roles where rolname = current_user"
    ).fetchone()
    if not superuser:
        for role in PIPELINE_ROLES:
            member = conn.execute("select pg_has_role(current_user, %s, 'member')", (role,)).fetchone()[0]
            if not member:
                conn.execute(sql.SQL("grant {} to {}").format(sql.Identifier(role), sql.Identifier(me)))


def set_login(conn: psycopg.Connection, role: str, password: str | None) -> None:
    """``LOGIN`` for ``role``; with a password, set it as a SCRAM-SHA-256 verifier."""
    # only when needed: roles are server-wide, and concurrent ALTER ROLEs of one role collide
    if not conn.execute("select rolcanlogin from pg_roles where rolname = %s", (role,)).fetchone()[0]:
        conn.execute(sql.SQL("alter role {} login").format(sql.Identifier(role)))
    if password:
        verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256")
        conn.execute(
            sql.SQL("alter role {} password {}").format(sql.Identifier(role), sql.Literal(verifier.decode()))
        )
        log.info("password of role %s set from configuration", role)


def reader_url(url: str, role: str, password: str | None = None) -> str:
    """The warehouse URL as a reader role would use it (same host, port and database)."""
    p = {k: v for k, v in db.parts(url).items() if k in ("host", "port", "dbname")}
    p["user"] = role
    if password:
        p["password"] = password
    return db.to_url(p)
