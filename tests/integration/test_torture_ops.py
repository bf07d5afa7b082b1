"""Torture: a case-management database with every kind of bad row and schema change at once.

One source (the contract's tables, tests/fixtures/ops/minimal_ops_schema.sql) holds good rows
beside bad ones of many kinds; every table is loaded as the DAG loads it (referenced tables first).
Each kind asserts its outcome (loaded, row quarantined, batch held, table failed, warning), the
reason text, and that the good rows beside it reached raw; every batch satisfies rows read =
loaded + quarantined; a real dbt build then carries the good rows into the marts. A second run
quarantines nothing twice, and a corrected row loads.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from include import db, load
from include.orchestration.assets import CASE_MANAGEMENT_TABLES
from include.transform import dbt as transform
from tests.integration.test_load_case_management import MINIMAL_SCHEMA

T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
FUTURE = dt.datetime.now(dt.UTC) + dt.timedelta(days=400)
CANARY = {"full_name": "Zebulon Canary-Quartz", "cnic": "99999-8888888-7", "phone": "0399-7777777"}

SOURCE = f"""
insert into public.factories (factory_id, name, city, province, sector, enrolled_on, workers_total,
    workers_female, updated_at) values
    (1, 'Good One', 'Lahore', 'Punjab', 'garment', '2020-01-01', 100, 40, '{T0}'),
    (2, 'Good Two', 'Karachi', 'Sindh', 'textile', '2021-01-01', 200, 90, '{T0}'),
    (3, 'Mistyped Clock', 'Karachi', 'Sindh', 'garment', '2021-01-01', 50, 10, '{FUTURE}'),
    (4, 'Province Typo', 'Karachi', 'Sindhh', 'garment', '2021-01-01', 50, 10, '{T0}');

alter table public.brands add column website text;
insert into public.brands values (1, 'Brand A', '{T0}', 'https://a.example');

alter table public.factory_brands drop constraint factory_brands_pkey;
insert into public.factory_brands values
    (1, 1, '2021-01-01', null, '{T0}'), (1, 1, '2021-01-01', '2022-01-01', '{T0}');

alter table public.advisory_visits drop constraint advisory_visits_pkey;
alter table public.advisory_visits alter column visit_id drop not null;
insert into public.advisory_visits values
    (1, 1, '2024-05-01', 'initial', 'onsite', 'A1', 'Working Time', '{T0}', null),
    (2, 999, '2024-05-02', 'initial', 'onsite', 'A1', 'Working Time', '{T0}', null),
    (null, 1, '2024-05-03', 'initial', 'onsite', 'A1', 'Working Time', '{T0}', null),
    (4, 1, '2024-05-04', 'initial', 'onsite', 'A1', 'Working Time', '{T0}', '{FUTURE}'),
    (5, 1, '{FUTURE.date()}', 'initial', 'onsite', 'A1', 'Working Time', '{T0}', null),
    (6, 2, '2024-05-06', 'continued', 'by pigeon', 'A1', 'Working Time', '{T0}', null);

alter table public.courses alter column days type text;
insert into public.courses values ('SST', 'Supervisory skills', '2'), ('GEAR', 'Gender equality', 'three');

insert into public.training_sessions values
    (1, 'SST', 1, 'Lahore', '2024-05-01', '2024-05-02', 'T1', '{T0}', null),
    (2, 'GEAR', 2, 'Karachi', '2024-06-03', '2024-06-01', 'T1', '{T0}', null);

insert into public.training_participants values
    (1, 1, 'P1', 'Amina One', '12345-1234567-1', '0300-1', 'female', 'worker', 1, true, 40, 70, '{T0}', null),
    (2, 1, 'P2', 'Bilal Two', '12345-1234567-2', '0300-2', 'M', 'manager', 1, true, 50, 80, '{T0}', null),
    (3, 1, 'P3', 'Sana Three', '12345-1234567-3', '0300-3', 'F', 'union_rep', 1, false, null, null,
        '{T0}', null),
    (4, 1, 'P4', '{CANARY["full_name"]}', '{CANARY["cnic"]}', '{CANARY["phone"]}', 'X', 'worker', 1, true,
        10, 20, '{T0}', null),
    (5, 1, 'P5', 'Out Of Range', '12345-1234567-5', '0300-5', 'female', 'worker', 1, true, 10, 150,
        '{T0}', null),
    (6, 1, 'P6', 'Dana Six', '12345-1234567-6', '0300-6', 'other', 'hr', 1, true, 60, 65, '{T0}', null);

insert into public.picc_meetings values (1, 1, '2024-05-01', 5, 2, 3, '{T0}');
alter table public.picc_meetings rename column held_on to meeting_date;

insert into public.improvement_items values
    (1, 1, 1, 'Overtime', 'pending', '2024-05-01', '2024-09-01', null, '{T0}');
alter table public.improvement_items drop column status;
"""


def q(url: str, query: str, params=None) -> list[tuple]:
    with db.connect(url) as conn:
        return conn.execute(query, params).fetchall()


def load_all(wh: str, ops: str) -> dict[str, dict | str]:
    """Every table, in the DAG's order: a summary, or the LoadFailed message (the task's failure)."""
    out: dict[str, dict | str] = {}
    for table in CASE_MANAGEMENT_TABLES:
        try:
            out[table] = load.load_case_management_table(wh, ops, table)
        except load.LoadFailed as err:
            out[table] = str(err)
    return out


def quarantined(wh: str, source: str) -> dict[str, str]:
    """raw text (as JSON) -> reason, of the rows quarantined from one source table."""
    return {
        raw: reason
        for raw, reason in q(
            wh, "select raw_text, reason from quarantine.rejected_rows where source = %s", (source,)
        )
    }


def warnings(wh: str, source: str) -> dict[str, tuple]:
    return {
        rule: (count, values)
        for rule, count, values in q(
            wh,
            "select v.expectation, v.unexpected_count, v.unexpected_values from audit.validation_results v "
            "join audit.load_batches b using (batch_id) where b.source_object = %s "
            "and v.severity = 'warning' and not v.success",
            (source,),
        )
    }


@pytest.fixture(scope="module")
def tortured(pg_server_url, tmp_path_factory):
    import os
    import uuid

    from include import warehouse

    suffix = uuid.uuid4().hex[:8]
    wh = db.with_database(pg_server_url, f"bwtest_torture_wh_{suffix}")
    ops = db.with_database(pg_server_url, f"bwtest_torture_ops_{suffix}")
    docs = tmp_path_factory.mktemp("docs")
    old = {k: os.environ.get(k) for k in ("PSEUDONYM_KEY", "DOCS_DIR")}
    os.environ.update(PSEUDONYM_KEY="test-key-not-secret-0123456789abcdef", DOCS_DIR=str(docs))
    db.ensure_database(wh)
    db.ensure_database(ops)
    try:
        warehouse.bootstrap(wh)
        with db.connect(ops) as conn:
            conn.execute(MINIMAL_SCHEMA.read_text())
            conn.execute(SOURCE)
        first = load_all(wh, ops)
        yield {"wh": wh, "ops": ops, "first": first, "docs": docs}
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        db.drop_database(wh)
        db.drop_database(ops)


def test_every_batch_balances_and_the_failed_tables_say_why(tortured):
    wh, first = tortured["wh"], tortured["first"]
    for read, loaded, held, status in q(
        wh, "select rows_read, rows_loaded, rows_quarantined, status from audit.load_batches"
    ):
        assert read == loaded + held, status
    failed = {t for t, r in first.items() if isinstance(r, str)}
    assert failed == {"factory_brands", "courses", "picc_meetings", "improvement_items"}, first
    # duplicate key in a batch: a rule about the batch, the batch is held
    assert (
        "public.factory_brands) quarantined: factory_id x brand_id x since unique" in first["factory_brands"]
    )
    # wrong type: the table fails, naming the column
    assert "public.courses: a value does not fit the contract's type" in first["courses"]
    assert "column days" in first["courses"] and '"three"' in first["courses"]
    # renamed column: named, with the candidate
    assert "public.picc_meetings: lacks contract columns held_on" in first["picc_meetings"]
    assert "meeting_date; renamed?" in first["picc_meetings"]
    # dropped column
    assert "public.improvement_items: lacks contract columns status" in first["improvement_items"]
    statuses = dict(q(wh, "select source_object, status from audit.load_batches"))
    assert statuses["public.factory_brands"] == "quarantined"
    assert {statuses[f"public.{t}"] for t in ("courses", "picc_meetings", "improvement_items")} == {
        "rejected"
    }
    assert q(wh, "select count(*) from raw.cm_factory_brands") == [(0,)]
    assert q(wh, "select count(*) from quarantine.rejected_rows where source = 'public.factory_brands'") == [
        (2,)
    ]


def test_bad_values_quarantine_their_row_alone(tortured):
    wh, first = tortured["wh"], tortured["first"]
    participants = quarantined(wh, "public.training_participants")
    by_id = {json.loads(raw)["participant_id"]: reason for raw, reason in participants.items()}
    assert by_id == {
        4: "critical expectation failed: gender allowed values",  # bad enum
        5: "critical expectation failed: post_score in range",  # score out of range
    }
    assert first["training_participants"]["rows_loaded"] == 4
    assert q(wh, "select participant_id from raw.cm_training_participants order by 1") == [
        (1,),
        (2,),
        (3,),
        (6,),
    ]

    visits = {
        json.loads(raw)["visit_id"]: reason
        for raw, reason in quarantined(wh, "public.advisory_visits").items()
    }
    assert visits[None] == "critical expectation failed: visit_id not null"  # null key
    assert visits[5] == "critical expectation failed: visit_date not in the future"
    assert visits[6] == "critical expectation failed: mode allowed values"
    # future deleted_at: the loader's row rule, against the source's own clock
    assert visits[4].startswith("change time not in the future: deleted_at after the source's now()")
    assert q(wh, "select visit_id from raw.cm_advisory_visits order by 1") == [(1,), (2,)]

    sessions = {
        json.loads(r)["session_id"]: why for r, why in quarantined(wh, "public.training_sessions").items()
    }
    assert sessions == {2: "critical expectation failed: ends_on not before starts_on"}
    factories = {json.loads(r)["factory_id"]: why for r, why in quarantined(wh, "public.factories").items()}
    assert set(factories) == {3, 4}
    assert factories[3].startswith("change time not in the future: updated_at after the source's now()")
    assert factories[4] == "critical expectation failed: province allowed values"
    assert q(wh, "select factory_id from raw.cm_factories order by 1") == [(1,), (2,)]


def test_a_future_change_time_never_moves_the_watermark_past_the_source_clock(tortured):
    wh, ops = tortured["wh"], tortured["ops"]
    (source_now,) = q(ops, "select now()")[0]
    marks = dict(q(wh, "select source_object, watermark from audit.watermarks"))
    assert marks["public.factories"] == T0
    assert marks["public.advisory_visits"] == T0
    assert all(mark <= source_now for mark in marks.values() if mark)
    recorded = q(
        wh,
        "select v.unexpected_count, v.unexpected_values from audit.validation_results v "
        "join audit.load_batches b using (batch_id) where b.source_object = 'public.factories' "
        "and v.expectation = 'change time not in the future'",
    )
    assert recorded == [(1, [{"_source_row": 4, "factory_id": 3}])]


def test_orphans_and_added_columns_are_warnings_with_the_rows_named(tortured):
    wh, first = tortured["wh"], tortured["first"]
    visit_warnings = warnings(wh, "public.advisory_visits")
    count, rows = visit_warnings["factory_id in factories"]
    assert count == 1 and [(r["visit_id"], r["factory_id"]) for r in rows] == [(2, 999)]
    message = q(wh, "select message from audit.load_batches where source_object = 'public.advisory_visits'")[
        0
    ][0]
    assert "factory_id in factories (1 rows" in message and '"factory_id": 999' in message
    assert first["brands"]["rows_loaded"] == 1
    assert warnings(wh, "public.brands") == {"no source columns beyond the contract": (1, ["website"])}
    brands_message = q(wh, "select message from audit.load_batches where source_object = 'public.brands'")[0][
        0
    ]
    assert "new columns not loaded: website" in brands_message


def test_no_personal_value_leaves_raw(tortured):
    wh, docs = tortured["wh"], tortured["docs"]
    outside_raw = json.dumps(
        q(wh, "select row_to_json(r)::text from quarantine.rejected_rows r")
        + q(wh, "select row_to_json(v)::text from audit.validation_results v")
        + q(wh, "select row_to_json(b)::text from audit.load_batches b")
    )
    files = "".join(
        p.read_text(errors="replace")
        for p in docs.rglob("*")
        if p.is_file() and p.suffix in (".json", ".html")
    )
    for value in CANARY.values():
        assert value not in outside_raw
        assert value not in files
    (masked,) = [
        json.loads(r) for r in quarantined(wh, "public.training_participants") if '"participant_id": 4' in r
    ]
    assert masked["full_name"].startswith("masked:") and masked["cnic"].startswith("masked:")
    assert masked["gender"] == "X"  # what broke the rule stays readable


def test_good_rows_reach_the_marts(tortured, tmp_path):
    wh = tortured["wh"]
    run = transform.run_dbt(
        ["build", "--select", "+fct_training_participation", "+dim_factory", "+fct_training_session"],
        wh,
        target_path=tmp_path / "target",
        check=False,
    )
    statuses = {r["unique_id"].split(".")[-1]: r["status"] for r in run.run_results()["results"]}
    for model in ("fct_training_participation", "dim_factory", "fct_training_session"):
        assert statuses.get(model) == "success", run.output[-4000:]
    assert q(wh, "select participant_id from marts.fct_training_participation order by 1") == [
        (1,),
        (2,),
        (3,),
        (6,),
    ]
    assert q(wh, "select session_id from marts.fct_training_session order by 1") == [(1,)]


def test_a_second_run_quarantines_nothing_twice_and_a_fixed_row_loads(tortured):
    wh, ops = tortured["wh"], tortured["ops"]
    rows = "select count(*) from quarantine.rejected_rows where source_row is not null"
    before = q(wh, rows)
    again = load_all(wh, ops)
    assert again["training_participants"]["rows_quarantined"] == 0
    assert again["training_participants"]["rows_loaded"] == 0
    # the held batch is held again (the watermark stays) but its rows are not copied twice
    assert "factory_id x brand_id x since unique" in again["factory_brands"]
    assert q(wh, rows) == before  # (a table that fails whole is recorded once per run, no row)
    assert warnings(wh, "public.brands")["no source columns beyond the contract"] == (1, ["website"])

    later = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    with db.connect(ops) as conn:
        conn.execute(
            "update public.training_participants set gender = 'male', updated_at = %s "
            "where participant_id = 4",
            (later,),
        )
        conn.execute("alter table public.picc_meetings rename column meeting_date to held_on")
    fixed = load_all(wh, ops)
    assert fixed["training_participants"]["rows_loaded"] == 1
    assert fixed["picc_meetings"]["rows_loaded"] == 1
    assert q(wh, "select gender from raw.cm_training_participants where participant_id = 4") == [("male",)]


def test_quarantine_of_personal_tables_is_purged_after_its_retention(tortured, monkeypatch):
    wh = tortured["wh"]
    with db.connect(wh) as conn:
        conn.execute(
            "update quarantine.rejected_rows set rejected_at = now() - interval '100 days' "
            "where source in ('public.training_participants', 'public.factories')"
        )
    monkeypatch.setenv("QUARANTINE_RETENTION_DAYS", "90")
    assert load.purge_quarantine(wh) >= 1
    assert q(
        wh, "select count(*) from quarantine.rejected_rows where source = 'public.training_participants'"
    ) == [(0,)]
    assert q(wh, "select count(*) from quarantine.rejected_rows where source = 'public.factories'") == [(2,)]
