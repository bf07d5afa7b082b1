"""Small helpers around PostgreSQL URLs and psycopg connections."""

from __future__ import annotations

from urllib.parse import quote

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo


def parts(url: str) -> dict[str, str]:
    """libpq keywords (host, port, user, password, dbname) of a URL or a conninfo string."""
    return {k: str(v) for k, v in conninfo_to_dict(url).items() if v is not None}


def with_database(url: str, dbname: str) -> str:
    """The same server and credentials, another database."""
    return to_url({**parts(url), "dbname": dbname})


def to_url(p: dict[str, str], scheme: str = "postgresql") -> str:
    """A ``scheme://user:password@host:port/dbname`` URL from libpq keywords."""
    user = quote(p.get("user", ""), safe="")
    password = p.get("password")
    auth = f"{user}:{quote(password, safe='')}@" if password else (f"{user}@" if user else "")
    host = p.get("host", "127.0.0.1")
    port = p.get("port", "5432")
    return f"{scheme}://{auth}{host}:{port}/{p.get('dbname', 'postgres')}"


def redact(url: str) -> str:
    """The URL with its password (if any) replaced by ``***``: for anything printed or logged."""
    try:
        p = parts(url)
    except Exception:  # not a URL libpq understands: hide everything between '://' and '@'
        head, sep, tail = url.partition("://")
        return f"{head}{sep}***@{tail.rpartition('@')[2]}" if "@" in tail else url
    if "password" in p:
        p["password"] = "***"
    out = to_url(p, scheme=url.split("://", 1)[0] if "://" in url else "postgresql")
    return out.replace(":%2A%2A%2A@", ":***@")


def sqlalchemy_url(url: str) -> str:
    """The URL in SQLAlchemy's form for psycopg 3 (used by Great Expectations and pandas)."""
    return to_url(parts(url), scheme="postgresql+psycopg")


def connect(url: str, role: str | None = None, **kwargs) -> psycopg.Connection:
    """A psycopg connection that names the application in ``pg_stat_activity``.

    With ``role``, the session runs ``SET ROLE`` so that it has that role's privileges only
    (``loader`` for loads): the connecting user must be a member of it (superusers are).
    """
    conn = psycopg.connect(make_conninfo(url, application_name="betterwork"), **kwargs)
    if role:
        conn.execute(sql.SQL("set role {}").format(sql.Identifier(role)))
        if not conn.autocommit:
            conn.commit()
    return conn


def answers(url: str, timeout: int = 2) -> bool:
    """Whether a server answers at this URL (used to pick the warehouse)."""
    try:
        with psycopg.connect(url, connect_timeout=timeout):
            return True
    except psycopg.Error:
        return False


def ensure_database(url: str) -> None:
    """Create the URL's database if it is missing (connecting to ``postgres`` on that server)."""
    dbname = parts(url).get("dbname", "postgres")
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (dbname,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(dbname)))


def drop_database(url: str) -> None:
    """Drop the URL's database, ending its sessions first (for test sessions' throwaway databases)."""
    dbname = parts(url)["dbname"]
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(dbname)))
