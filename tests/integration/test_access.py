"""What each database role can and cannot read, over real logins (analyst, researcher) and
SET ROLE sessions (loader, transformer), on a warehouse built by dbt; grants survive rebuilds."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg import sql

from include import db, warehouse
from include.serve import access
from tests.integration.test_research import built_warehouse  # noqa: F401  (module-scoped fixture)

PRIVATE_TABLES = [
    "raw.cm_factories",
    "raw.cm_training_participants",
    "raw.assessment_export_rows",
    "quarantine.rejected_rows",
    "audit.load_batches",
    "private.pseudonym_key",
    "staging.stg_factories",
    "intermediate.int_assessments",
]
MARTS = ["marts.dim_factory", "marts.fct_finding", "marts.cp_noncompliance_rate", "marts.programme_kpis"]
RESEARCH = ["research.dim_factory", "research.cp_noncompliance_rate", "research.factory_cp_findings"]


def can_read(conn: psycopg.Connection, table: str) -> bool:
    try:
        with conn.transaction():
            conn.execute(f"select * from {table} limit 1").fetchall()
        return True
    except psycopg.errors.InsufficientPrivilege:
        return False


def login(url: str, role: str) -> psycopg.Connection:
    """A real login as the role (local trust authentication: no password)."""
    return psycopg.connect(access.reader_url(url, role), autocommit=True)


def test_analyst_reads_the_marts_only(built_warehouse):  # noqa: F811
    with login(built_warehouse.url, "analyst") as conn:
        assert conn.execute("select current_user").fetchone()[0] == "analyst"
        assert all(can_read(conn, t) for t in MARTS)
        assert not any(can_read(conn, t) for t in PRIVATE_TABLES + RESEARCH)
        # unqualified names resolve in marts (BI tools, psql)
        assert conn.execute("select count(*) from fct_finding").fetchone()[0] > 0


def test_researcher_reads_the_research_schema_only(built_warehouse):  # noqa: F811
    with login(built_warehouse.url, "researcher") as conn:
        assert all(can_read(conn, t) for t in RESEARCH)
        assert not any(can_read(conn, t) for t in PRIVATE_TABLES + MARTS)


def test_readers_cannot_compute_pseudonyms(built_warehouse):  # noqa: F811
    for role in ("analyst", "researcher"):
        with login(built_warehouse.url, role) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select private.pseudonym('factory', '90001')")


def test_loader_writes_raw_and_reads_nothing_downstream(built_warehouse):  # noqa: F811
    with db.connect(built_warehouse.url, role="loader", autocommit=True) as conn:
        assert can_read(conn, "raw.cm_factories") and can_read(conn, "audit.load_batches")
        assert can_read(conn, "quarantine.rejected_rows")
        assert not any(can_read(conn, t) for t in ["private.pseudonym_key", *MARTS, *RESEARCH])
        with conn.transaction(force_rollback=True):
            conn.execute(
                "insert into quarantine.rejected_rows (batch_id, source, reason) values (1, 'x', 'test')"
            )


def test_transformer_reads_raw_and_the_key_but_cannot_write_raw(built_warehouse):  # noqa: F811
    options = warehouse.key_options(built_warehouse.cfg)
    with db.connect(built_warehouse.url, role="transformer", autocommit=True, options=options) as conn:
        assert can_read(conn, "raw.cm_training_participants")
        assert conn.execute("select private.pseudonym('factory', '1')").fetchone()[0]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "insert into raw.cm_brands (brand_id, _batch_id, _source, _source_row) values (1,1,'x',1)"
            )


def test_grants_survive_full_refresh_and_incremental_runs(built_warehouse):  # noqa: F811
    selection = ["--select", "marts.cp_noncompliance_rate marts.dim_factory path:models/research"]
    built_warehouse.dbt("run", "--full-refresh", *selection)
    built_warehouse.dbt("run", *selection)
    with (
        login(built_warehouse.url, "analyst") as analyst,
        login(built_warehouse.url, "researcher") as researcher,
    ):
        assert can_read(analyst, "marts.cp_noncompliance_rate") and can_read(analyst, "marts.dim_factory")
        assert all(can_read(researcher, t) for t in RESEARCH)
        assert not can_read(analyst, "research.dim_factory") and not can_read(researcher, "marts.dim_factory")


def test_analysts_see_table_and_column_descriptions(built_warehouse):  # noqa: F811
    with login(built_warehouse.url, "analyst") as conn:
        table = conn.execute("select obj_description('marts.fct_finding'::regclass, 'pg_class')").fetchone()[
            0
        ]
        assert table
        missing = conn.execute(
            """
            select c.relname, a.attname
            from pg_attribute a join pg_class c on c.oid = a.attrelid
            join pg_namespace n on n.oid = c.relnamespace
            where n.nspname = 'marts' and c.relkind = 'r' and a.attnum > 0 and not a.attisdropped
              and coalesce(col_description(c.oid, a.attnum), '') = ''
            """
        ).fetchall()
        assert missing == []
    with login(built_warehouse.url, "researcher") as conn:
        missing = conn.execute(
            """
            select c.relname, a.attname
            from pg_attribute a join pg_class c on c.oid = a.attrelid
            join pg_namespace n on n.oid = c.relnamespace
            where n.nspname = 'research' and c.relkind = 'r' and a.attnum > 0 and not a.attisdropped
              and coalesce(col_description(c.oid, a.attnum), '') = ''
            """
        ).fetchall()
        assert missing == []


def test_password_from_configuration_is_stored_as_scram_verifier(pg_server_url):
    role = f"bwtest_reader_{uuid.uuid4().hex[:8]}"
    with db.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create role {} nologin").format(sql.Identifier(role)))
        try:
            access.set_login(conn, role, "s3cret pass'word")
            login_ok, secret = conn.execute(
                "select rolcanlogin, rolpassword from pg_authid where rolname = %s", (role,)
            ).fetchone()
            assert login_ok and secret.startswith("SCRAM-SHA-256$") and "s3cret" not in secret
            access.set_login(conn, role, None)  # unset: login kept, password left as it is
            assert (
                conn.execute("select rolpassword from pg_authid where rolname = %s", (role,)).fetchone()[0]
                == secret
            )
        finally:
            conn.execute(sql.SQL("drop role {}").format(sql.Identifier(role)))
