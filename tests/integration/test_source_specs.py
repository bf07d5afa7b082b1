"""The source specs (include/contract.py) are the one definition: everything that restates them agrees.

Checked against what PostgreSQL makes of the DDL (a bootstrapped warehouse; the demo's and the
tests' case-management schemas applied to a throwaway database), not against the SQL text: the raw
tables (columns, order, types), the source tables (columns, types, primary key), the extraction
column lists, the GX suites' shape rule (``required columns``) and key-uniqueness rule, and the
personal columns. A failure names the table and what disagrees.
"""

from __future__ import annotations

import re

import pytest

from include import contract, db
from include.config import PROJECT_DIR
from include.extract import case_management as extract_ops
from include.extract import surveys
from include.extract.columns import CONTRACT_COLUMNS
from include.personal_data import PERSONAL_COLUMNS
from include.validate import suites as validate

LINEAGE = ("_batch_id", "_source", "_source_row", "_loaded_at")
SCHEMAS = {
    "demo": PROJECT_DIR / "include" / "demo" / "ops_schema.sql",
    "tests": PROJECT_DIR / "tests" / "fixtures" / "ops" / "minimal_ops_schema.sql",
}
NOT_IN_CONTRACT = ("created_at",)  # the demo source's own bookkeeping, never extracted


def columns_of(conn, schema: str, table: str) -> list[tuple[str, str]]:
    return conn.execute(
        "select attname, format_type(atttypid, atttypmod) from pg_attribute"
        " where attrelid = to_regclass(%s) and attnum > 0 and not attisdropped order by attnum",
        (f"{schema}.{table}",),
    ).fetchall()


def canonical(conn, spec: contract.TableSpec) -> list[tuple[str, str]]:
    """The spec's columns with their types as PostgreSQL names them (int → integer, …)."""
    return [(c, conn.execute("select %s::regtype::text", (t,)).fetchone()[0]) for c, t in spec.column_types]


def test_raw_tables_are_the_specs(warehouse_db):
    with db.connect(warehouse_db) as conn:
        for spec in contract.SOURCES:
            found = columns_of(conn, "raw", spec.entity)
            assert found, f"{spec.raw_table} is missing from include/sql/warehouse.sql"
            assert [c for c, _ in found[-len(LINEAGE) :]] == list(LINEAGE), spec.raw_table
            assert found[: -len(LINEAGE)] == canonical(conn, spec), (
                f"{spec.raw_table} in include/sql/warehouse.sql disagrees with include/contract.py"
            )
        # the survey waves' raw tables: every column text, named as the crosswalk seed names them
        # (include/extract/surveys.py, which reads the seed, is their definition)
        survey_tables = set()
        for instrument in surveys.INSTRUMENTS:
            table = surveys.raw_table(instrument).removeprefix("raw.")
            survey_tables.add(table)
            found = columns_of(conn, "raw", table)
            assert [c for c, _ in found[-len(LINEAGE) :]] == list(LINEAGE), table
            assert found[: -len(LINEAGE)] == [(c, "text") for c in surveys.raw_columns(instrument)], (
                f"raw.{table} in include/sql/warehouse.sql disagrees with include/extract/surveys.py"
            )
        tables = {t for (t,) in conn.execute("select tablename from pg_tables where schemaname = 'raw'")}
        partitions = {t for t in tables if re.fullmatch(r"assessment_export_rows_(b[0-9]+|default)", t)}
        assert tables - partitions == set(contract.RAW_TABLES) | survey_tables, (
            "raw tables without a spec, or specs without one"
        )


@pytest.mark.parametrize("which", sorted(SCHEMAS))
def test_case_management_source_schemas_are_the_specs(fresh_ops_database, which):
    text = SCHEMAS[which].read_text()
    with db.connect(fresh_ops_database) as conn:
        conn.execute(text.partition("-- @after-load")[0])
        for spec in contract.CASE_MANAGEMENT.values():
            found = [(c, t) for c, t in columns_of(conn, "public", spec.name) if c not in NOT_IN_CONTRACT]
            assert found == canonical(conn, spec), f"public.{spec.name} in {SCHEMAS[which].name}"
            key = conn.execute(
                "select array_agg(a.attname order by k.ord) from pg_index i"
                " cross join unnest(i.indkey) with ordinality as k(attnum, ord)"
                " join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum"
                " where i.indrelid = to_regclass(%s) and i.indisprimary",
                (f"public.{spec.name}",),
            ).fetchone()[0]
            assert tuple(key or ()) == spec.key, f"primary key of public.{spec.name} in {SCHEMAS[which].name}"


def test_extraction_column_lists_are_the_specs():
    from include.demo import ops as demo_ops

    assert list(CONTRACT_COLUMNS) == contract.EXPORT.columns
    assert list(extract_ops._TABLES) == list(contract.CASE_MANAGEMENT_TABLES)
    for name, spec in contract.CASE_MANAGEMENT.items():
        extracted = extract_ops.spec(name)
        assert (extracted.columns, extracted.key) == (spec.columns, spec.key), name
        assert extracted.change_columns == tuple(c for c in ("updated_at", "deleted_at") if c in spec.columns)
        # the demo writes its rows in this order (derived from the spec, plus its own created_at)
        written = [c for c in demo_ops.COLUMNS[name] if c not in NOT_IN_CONTRACT]
        assert written == spec.columns, f"include/demo/ops.py writes {name} with other columns"


def test_gx_shape_and_key_rules_are_the_specs():
    for spec in contract.SOURCES:
        suite = validate.load_suite_json(spec.entity)
        by_rule = {e["meta"]["rule"]: e for e in suite["expectations"]}
        shape = by_rule["required columns"]
        assert shape["meta"]["severity"] == "critical", spec.entity
        assert shape["kwargs"]["column_set"] == [*spec.columns, "_source_row"], (
            f"expectations/{spec.entity}.json 'required columns' disagrees with include/contract.py"
        )
        unique = [e for e in suite["expectations"] if "unique" in e["meta"]["rule"]]
        assert len(unique) == 1 and unique[0]["meta"]["severity"] == "critical", spec.entity
        kwargs = unique[0]["kwargs"]
        if "unexpected_rows_query" in kwargs:  # exports: one GROUP BY per file and key
            grouped = kwargs["unexpected_rows_query"].split(" group by ", 1)[1].split(" having ")[0]
            assert grouped == ", ".join(["_batch_id", *(f'"{c}"' for c in spec.key)]), spec.entity
        else:
            assert tuple(kwargs.get("column_list") or [kwargs["column"]]) == spec.key, spec.entity


def test_personal_columns_are_the_specs():
    for spec in contract.SOURCES:
        assert PERSONAL_COLUMNS.get(spec.entity, ()) == spec.personal, spec.entity
