"""Incremental extraction of case-management tables into raw: updates, deletions, late rows."""

from __future__ import annotations

import datetime as dt

import pytest

from include import db, load
from include.config import PROJECT_DIR
from include.extract.case_management import spec
from include.orchestration.assets import CASE_MANAGEMENT_TABLES

DEMO_SCHEMA = PROJECT_DIR / "include" / "demo" / "ops_schema.sql"
MINIMAL_SCHEMA = PROJECT_DIR / "tests" / "fixtures" / "ops" / "minimal_ops_schema.sql"
T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def ops(fresh_ops_database):
    schema = DEMO_SCHEMA if DEMO_SCHEMA.exists() else MINIMAL_SCHEMA
    with db.connect(fresh_ops_database) as conn:
        conn.execute(schema.read_text())
    return fresh_ops_database


@pytest.fixture
def wh(warehouse_db, tmp_path, monkeypatch):
    monkeypatch.setenv("DOCS_DIR", str(tmp_path / "docs"))
    return warehouse_db


def run(url: str, query: str, params=None):
    with db.connect(url) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else None


def add_factory(ops_url: str, factory_id: int, updated_at: dt.datetime, **overrides) -> None:
    values = {
        "factory_id": factory_id,
        "name": f"Factory {factory_id}",
        "os_id": "PK2023145ABCDE7",
        "address": "Plot 1",
        "city": "Karachi",
        "province": "Sindh",
        "sector": "garment",
        "enrolled_on": dt.date(2020, 1, 1),
        "exited_on": None,
        "exit_reason": None,
        "workers_total": 1000,
        "workers_female": 400,
        "updated_at": updated_at,
        "deleted_at": None,
    }
    values.update(overrides)
    cols = ", ".join(values)
    run(
        ops_url,
        f"insert into public.factories ({cols}) values ({', '.join(['%s'] * len(values))})",
        list(values.values()),
    )


def raw_versions(url: str) -> list[tuple]:
    return run(
        url,
        "select factory_id, name, updated_at, deleted_at from raw.cm_factories "
        "order by factory_id, _batch_id",
    )


def test_spec_columns_match_the_raw_tables(wh):
    for table in CASE_MANAGEMENT_TABLES:
        cols = run(
            wh,
            "select column_name from information_schema.columns where table_schema = 'raw' "
            "and table_name = %s and column_name not like '\\_%%' order by ordinal_position",
            (f"cm_{table}",),
        )
        assert [c[0] for c in cols] == spec(table).columns, table


def test_updates_deletions_and_reruns(wh, ops):
    add_factory(ops, 1, T0)
    add_factory(ops, 2, T0)
    first = load.load_case_management_table(wh, ops, "factories")
    assert first["rows_loaded"] == 2
    assert run(wh, "select watermark from audit.watermarks") == [(T0,)]

    # Re-running with nothing changed loads nothing (the look-back window re-reads, then skips).
    assert load.load_case_management_table(wh, ops, "factories")["rows_loaded"] == 0
    assert len(raw_versions(wh)) == 2

    run(
        ops,
        "update public.factories set name = 'Renamed', updated_at = %s where factory_id = 1",
        (T0 + dt.timedelta(hours=1),),
    )
    run(
        ops,
        "update public.factories set deleted_at = %s, updated_at = %s where factory_id = 2",
        (T0 + dt.timedelta(hours=2), T0 + dt.timedelta(hours=2)),
    )
    add_factory(ops, 3, T0 + dt.timedelta(hours=2))
    assert load.load_case_management_table(wh, ops, "factories")["rows_loaded"] == 3
    assert raw_versions(wh) == [
        (1, "Factory 1", T0, None),
        (1, "Renamed", T0 + dt.timedelta(hours=1), None),
        (2, "Factory 2", T0, None),
        (2, "Factory 2", T0 + dt.timedelta(hours=2), T0 + dt.timedelta(hours=2)),
        (3, "Factory 3", T0 + dt.timedelta(hours=2), None),
    ]
    # A soft deletion that forgot to touch updated_at still arrives (change time = greatest of both).
    run(
        ops, "update public.factories set deleted_at = %s where factory_id = 3", (T0 + dt.timedelta(hours=3),)
    )
    assert load.load_case_management_table(wh, ops, "factories")["rows_loaded"] == 1
    assert run(wh, "select watermark from audit.watermarks") == [(T0 + dt.timedelta(hours=3),)]

    before = run(wh, "select count(*) from raw.cm_factories")
    load.load_case_management_table(wh, ops, "factories")
    assert run(wh, "select count(*) from raw.cm_factories") == before
    for read, loaded, quarantined, status in run(
        wh, "select rows_read, rows_loaded, rows_quarantined, status from audit.load_batches"
    ):
        assert status == "loaded" and read == loaded + quarantined
    assert run(wh, "select _source, min(_source_row) from raw.cm_factories group by 1") == [
        ("public.factories", 1)
    ]


def test_rows_committed_late_are_not_missed(wh, ops, monkeypatch):
    monkeypatch.setenv("EXTRACT_LOOKBACK_MINUTES", "30")
    add_factory(ops, 1, T0)
    load.load_case_management_table(wh, ops, "factories")
    # A transaction that stamped its row before the watermark commits after the extract.
    add_factory(ops, 2, T0 - dt.timedelta(minutes=20))
    add_factory(ops, 3, T0 - dt.timedelta(minutes=45))  # later than the look-back window allows
    summary = load.load_case_management_table(wh, ops, "factories")
    assert summary["rows_loaded"] == 1
    assert [r[0] for r in raw_versions(wh)] == [1, 2]
    assert (
        "already loaded"
        in run(wh, "select message from audit.load_batches order by batch_id desc limit 1")[0][0]
    )


def test_courses_without_updated_at_load_changed_rows_only(wh, ops):
    run(
        ops,
        "insert into public.courses values ('SST', 'Supervisory skills', 2), ('GEAR', 'Gender equality', 3)",
    )
    assert load.load_case_management_table(wh, ops, "courses")["rows_loaded"] == 2
    assert load.load_case_management_table(wh, ops, "courses")["rows_loaded"] == 0
    run(ops, "update public.courses set days = 4 where course_code = 'GEAR'")
    assert load.load_case_management_table(wh, ops, "courses")["rows_loaded"] == 1
    run(ops, "update public.courses set days = 3 where course_code = 'GEAR'")  # back to an older value
    assert load.load_case_management_table(wh, ops, "courses")["rows_loaded"] == 1
    assert run(wh, "select course_code, days from raw.cm_courses order by _batch_id, course_code") == [
        ("GEAR", 3),
        ("SST", 2),
        ("GEAR", 4),
        ("GEAR", 3),
    ]


def test_every_table_loads_with_a_composite_key(wh, ops):
    run(ops, "insert into public.brands values (1, 'Brand A', %s)", (T0,))
    run(
        ops,
        "insert into public.factory_brands values (1, 1, '2021-01-01', null, %s), "
        "(1, 1, '2023-01-01', null, %s)",
        (T0, T0),
    )
    for table in CASE_MANAGEMENT_TABLES:
        load.load_case_management_table(wh, ops, table)
    assert run(wh, "select count(*) from raw.cm_factory_brands") == [(2,)]
    assert run(
        wh, "select count(distinct source_object) from audit.load_batches where status = 'loaded'"
    ) == [(9,)]


def test_a_row_rule_quarantines_the_row_alone_and_the_watermark_moves_past_it(wh, ops):
    add_factory(ops, 1, T0)
    load.load_case_management_table(wh, ops, "factories")
    add_factory(ops, 2, T0 + dt.timedelta(hours=1), workers_total=10, workers_female=50)
    add_factory(ops, 3, T0 + dt.timedelta(hours=1))
    summary = load.load_case_management_table(wh, ops, "factories")
    assert (summary["rows_loaded"], summary["rows_quarantined"]) == (1, 1)
    assert run(wh, "select watermark from audit.watermarks") == [(T0 + dt.timedelta(hours=1),)]
    assert [r[0] for r in raw_versions(wh)] == [1, 3]
    assert run(
        wh,
        "select reason from quarantine.rejected_rows where raw_text like '%%\"workers_female\": 50%%'",
    ) == [("critical expectation failed: workers_female <= workers_total",)]
    # Read again in the look-back window: not quarantined twice.
    assert load.load_case_management_table(wh, ops, "factories")["rows_quarantined"] == 0
    assert run(wh, "select count(*) from quarantine.rejected_rows") == [(1,)]
    # Fixed at the source (which touches updated_at): the next run loads it.
    run(
        ops,
        "update public.factories set workers_female = 5, updated_at = %s where factory_id = 2",
        (T0 + dt.timedelta(hours=2),),
    )
    assert load.load_case_management_table(wh, ops, "factories")["rows_loaded"] == 1
    assert [r[0] for r in raw_versions(wh)] == [1, 2, 3]


def test_a_batch_rule_holds_the_batch_and_keeps_the_watermark(wh, ops):
    add_factory(ops, 1, T0)
    load.load_case_management_table(wh, ops, "factories")
    run(ops, "alter table public.factories drop constraint factories_pkey")
    add_factory(ops, 2, T0 + dt.timedelta(hours=1))
    add_factory(ops, 2, T0 + dt.timedelta(hours=1), name="Twin")
    with pytest.raises(load.LoadFailed, match=r"public.factories\) quarantined: factory_id unique"):
        load.load_case_management_table(wh, ops, "factories")
    assert run(wh, "select watermark from audit.watermarks") == [(T0,)]
    assert [r[0] for r in raw_versions(wh)] == [1]
    # Held again on the next run: counted, but the same versions are not copied to quarantine twice.
    with pytest.raises(load.LoadFailed):
        load.load_case_management_table(wh, ops, "factories")
    assert run(wh, "select count(*) from quarantine.rejected_rows") == [(2,)]
    assert run(wh, "select rows_read, rows_quarantined, status from audit.load_batches order by batch_id")[
        1:
    ] == [(2, 2, "quarantined"), (2, 2, "quarantined")]


def test_a_source_table_lacking_contract_columns_is_rejected(wh, ops):
    run(ops, "alter table public.brands drop column name")
    with pytest.raises(load.LoadFailed, match="public.brands: lacks contract columns name"):
        load.load_case_management_table(wh, ops, "brands")
    assert run(wh, "select status from audit.load_batches") == [("rejected",)]


def test_nothing_new_is_not_validated_again(wh, ops):
    """An extract with nothing new has no row for a rule to judge: Great Expectations is not started
    for it (no validation result for that batch), and the batch is recorded as loaded, 0 rows."""
    add_factory(ops, 1, T0)
    first = load.load_case_management_table(wh, ops, "factories")
    again = load.load_case_management_table(wh, ops, "factories")
    assert first["rows_loaded"] == 1 and again["rows_loaded"] == 0
    (first_batch,), (second_batch,) = run(wh, "select batch_id from audit.load_batches order by batch_id")
    by_gx = "select batch_id, count(*) from audit.validation_results where suite <> 'loader' group by 1"
    validated = dict(run(wh, by_gx))
    assert validated.get(first_batch, 0) > 0 and second_batch not in validated
    status = run(wh, "select status, rows_read from audit.load_batches where batch_id = %s", (second_batch,))
    assert status == [("loaded", 0)]
