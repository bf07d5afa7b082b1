"""The scale-1 demo sources hold Better Work Pakistan's 2025 figures and the sources' quirks.

Every figure is counted from what was written (export files read back, tables queried) with the
counting rules of docs/MARTS.md, never from the generator's own variables.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import re
import uuid
from collections import defaultdict
from pathlib import Path

import openpyxl
import psycopg
import pytest

from include import db
from include.demo import generate
from include.demo.catalogue import read_points
from include.demo.ops import TABLES, NotDemoData

ARABIC_SCRIPT = re.compile("[\u0600-\u06ff]")


@pytest.fixture(scope="module")
def demo(pg_server_url, tmp_path_factory):
    """(landing dir, ops URL) of a scale-1 demo programme, seed 2025."""
    landing = tmp_path_factory.mktemp("landing")
    url = db.with_database(pg_server_url, f"bwtest_demo_{uuid.uuid4().hex[:10]}")
    db.ensure_database(url)
    try:
        summary = generate(landing, url, scale=1, seed=2025)
        assert "skipped" not in summary["case_management"]
        yield landing, url
    finally:
        db.drop_database(url)


def _export_files(landing: Path) -> list[Path]:
    folder = landing / "assessments"
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    return sorted(files, key=lambda p: (p.stat().st_mtime, p.name))  # the order they were issued


def _read(path: Path) -> list[dict[str, str]]:
    if path.suffix == ".xlsx":
        book = openpyxl.load_workbook(path, read_only=True)
        rows = book.worksheets[0].iter_rows(values_only=True)
        header = list(next(rows))
        out = [{h: "" if v is None else str(v) for h, v in zip(header, r, strict=True)} for r in rows]
        book.close()
        return out
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def export_rows(demo) -> list[tuple[str, dict[str, str]]]:
    landing, _ = demo
    return [(p.name, row) for p in _export_files(landing) for row in _read(p)]


def _counted_assessments(export_rows) -> dict[tuple[int, int], tuple[dt.date, str]]:
    """(factory, cycle) -> (start date, assessment id) by the contract's recipe."""
    latest: dict[tuple[str, str], dict[str, str]] = {}
    for _, row in export_rows:  # files in issue order: the most recent export wins
        latest[(row["Quest.ID"].strip(), row["Question.ID"].strip())] = row
    chosen: dict[tuple[int, int], tuple[dt.date, str]] = {}
    for row in latest.values():
        if row["Question.type"].strip().upper() != "NCQ" or row["Finding"].strip() not in {"0", "1"}:
            continue
        if row["Factory.Assessed.Name"].strip().lower().endswith("(obsolete)"):
            continue
        key = (int(row["Factory.Assessed.ID"]), int(row["Cycle"]))
        start = dt.datetime.strptime(row["Assesment.Start.Date"].strip(), "%d/%m/%Y").date()
        if key not in chosen or start > chosen[key][0]:
            chosen[key] = (start, row["Quest.ID"].strip())
    return chosen


def _one(url: str, query: str):
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchone()[0]


def _all(url: str, query: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


# --------------------------------------------------------------------------- the 2025 figures


def test_scale_1_holds_better_work_pakistans_2025_figures(demo, export_rows):
    _, url = demo
    assessments = _counted_assessments(export_rows)
    assert len(assessments) == 184
    assert {cycle for _, cycle in assessments} == {1, 2, 3}
    starts = [start for start, _ in assessments.values()]
    assert dt.date(2022, 1, 1) <= min(starts) and max(starts) <= dt.date(2025, 12, 31)
    registry = {r[0] for r in _all(url, "select factory_id from factories where deleted_at is null")}
    assert {factory for factory, _ in assessments} <= registry
    assert len(registry) == 121
    assert _one(url, "select count(*) from brands") == 19
    assert _one(url, "select count(*) from advisory_visits where deleted_at is null") == 1200
    assert _one(url, "select count(*) from training_sessions where deleted_at is null") == 500
    people = _one(
        url,
        """select count(distinct p.person_ref)
           from training_participants p join training_sessions s using (session_id)
           where p.attended and p.deleted_at is null and s.deleted_at is null""",
    )
    assert people >= 6000
    cities = set(_all(url, "select distinct city, province from factories"))
    assert cities == {("Karachi", "Sindh"), ("Lahore", "Punjab"), ("Faisalabad", "Punjab")}
    courses = {r[0] for r in _all(url, "select course_code from courses")}
    assert courses == {"SST", "GEAR", "WPC", "OSH", "HRM", "HAR"}


def test_programme_calendar_is_2022_to_2025(demo):
    """The programme started in 2022: no enrolment or service (deleted rows included) outside 2022-2025."""
    _, url = demo
    dated = {
        "factories": ("enrolled_on", "exited_on"),
        "advisory_visits": ("visit_date",),
        "training_sessions": ("starts_on", "ends_on"),
        "picc_meetings": ("held_on",),
        "improvement_items": ("raised_on", "closed_on"),
    }
    for table, columns in dated.items():
        for column in columns:
            first, last = _all(url, f"select min({column}), max({column}) from {table}")[0]
            assert first >= dt.date(2022, 1, 1), (table, column, first)
            assert last <= dt.date(2025, 12, 31), (table, column, last)
    # and each year of the programme has services
    years = {
        int(r[0]) for r in _all(url, "select distinct extract(year from visit_date) from advisory_visits")
    }
    assert years == {2022, 2023, 2024, 2025}
    years = {
        int(r[0]) for r in _all(url, "select distinct extract(year from starts_on) from training_sessions")
    }
    assert years == {2022, 2023, 2024, 2025}


# docs/SOURCES.md: every case-management table and its columns (the generator may add created_at).
CONTRACT_TABLES = {
    "factories": "factory_id name os_id address city province sector enrolled_on exited_on exit_reason"
    " workers_total workers_female updated_at deleted_at",
    "brands": "brand_id name updated_at",
    "factory_brands": "factory_id brand_id since until updated_at",
    "advisory_visits": "visit_id factory_id visit_date phase mode advisor_code topics updated_at deleted_at",
    "courses": "course_code title days",
    "training_sessions": "session_id course_code factory_id city starts_on ends_on trainer_code"
    " updated_at deleted_at",
    "training_participants": "participant_id session_id person_ref full_name cnic phone gender role"
    " factory_id attended pre_score post_score updated_at deleted_at",
    "picc_meetings": "meeting_id factory_id held_on workers_present managers_present women_present"
    " updated_at",
    "improvement_items": "item_id factory_id cycle compliance_point status raised_on due_on closed_on"
    " updated_at",
}


def test_case_management_has_every_contract_table_and_column_with_rows(demo):
    _, url = demo
    for table, columns in CONTRACT_TABLES.items():
        present = {
            r[0]
            for r in _all(
                url,
                "select column_name from information_schema.columns"
                f" where table_schema = 'public' and table_name = '{table}'",
            )
        }
        assert set(columns.split()) <= present, (table, set(columns.split()) - present)
        assert _one(url, f"select count(*) from {table}") > 0, table
    assert set(_all(url, "select distinct phase, mode from advisory_visits")) >= {
        ("initial", "onsite"),
        ("continued", "virtual"),
    }
    assert {r[0] for r in _all(url, "select distinct status from improvement_items")} == {
        "pending",
        "in_progress",
        "completed",
    }
    roles = {r[0] for r in _all(url, "select distinct role from training_participants")}
    assert roles == {"worker", "line_supervisor", "manager", "hr", "union_rep", "picc_member"}


def test_noncompliance_is_high_in_osh_working_time_compensation_and_falls_by_cycle(export_rows):
    chosen = {quest for _, quest in _counted_assessments(export_rows).values()}
    latest = {}
    for _, row in export_rows:
        latest[(row["Quest.ID"], row["Question.ID"])] = row
    nc: dict[tuple[str, str, str], bool] = {}  # (assessment, cycle, cluster) -> any finding 1
    for row in latest.values():
        if row["Quest.ID"] in chosen and row["Question.type"] == "NCQ" and row["Finding"] in {"0", "1"}:
            key = (row["Quest.ID"], row["Cycle"], row["Cluster"])
            nc[key] = nc.get(key, False) or row["Finding"] == "1"
    rate: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for (_, cycle, cluster), value in nc.items():
        rate[(cycle, cluster)].append(value)
    share = {k: sum(v) / len(v) for k, v in rate.items()}
    for cluster in ("Occupational Safety and Health", "Working Time", "Compensation"):
        assert share[("1", cluster)] > 0.8
        assert share[("3", cluster)] < share[("1", cluster)]
    assert share[("1", "Child Labour")] < 0.3 and share[("1", "Forced Labour")] < 0.3
    top = sorted({c for _, c in share}, key=lambda c: share[("1", c)], reverse=True)[:3]
    assert set(top) == {"Occupational Safety and Health", "Working Time", "Compensation"}


def test_compliance_point_noncompliance_falls_with_each_cycle(export_rows):
    """Mean share of assessed factories non-compliant per compliance point, cycle 1 > 2 > 3 (MARTS.md)."""
    chosen = {quest for _, quest in _counted_assessments(export_rows).values()}
    latest = {}
    for _, row in export_rows:
        latest[(row["Quest.ID"], row["Question.ID"])] = row
    nc: dict[tuple[str, str, str], bool] = {}  # (assessment, cycle, point) -> any finding 1
    for row in latest.values():
        if row["Quest.ID"] in chosen and row["Question.type"] == "NCQ" and row["Finding"] in {"0", "1"}:
            key = (row["Quest.ID"], row["Cycle"], " ".join(row["CP"].split()).lower())
            nc[key] = nc.get(key, False) or row["Finding"] == "1"
    by_point: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for (_, cycle, point), value in nc.items():
        by_point[(cycle, point)].append(value)
    mean = {}
    for cycle in ("1", "2", "3"):
        rates = [sum(v) / len(v) for (c, _), v in by_point.items() if c == cycle]
        mean[cycle] = sum(rates) / len(rates)
    assert mean["1"] > mean["2"] > mean["3"] > 0


def test_female_shares_are_plausible(demo):
    _, url = demo
    workers = _one(url, "select sum(workers_female)::float / sum(workers_total) from factories")
    assert 0.2 <= workers <= 0.35
    shares = dict(
        _all(
            url,
            """select s.course_code, avg((p.gender in ('F', 'female'))::int)::float
               from training_participants p join training_sessions s using (session_id)
               group by 1""",
        )
    )
    assert shares["GEAR"] > 0.6 > shares["OSH"]
    trainees = _one(
        url,
        """select avg(female::int)::float from (
               select distinct p.person_ref, p.gender in ('F', 'female') as female
               from training_participants p join training_sessions s using (session_id)
               where p.attended and p.deleted_at is null and s.deleted_at is null) x""",
    )
    assert workers < trainees < 0.5, "women are a larger share of trainees than of workers"


# --------------------------------------------------------------------------- export quirks


def test_csv_exports_have_bom_and_crlf_and_one_export_is_xlsx(demo):
    landing, _ = demo
    files = _export_files(landing)
    assert any(p.suffix == ".xlsx" for p in files)
    assert len(files) >= 6, "several exports over time"
    issued = sorted({dt.date.fromtimestamp(p.stat().st_mtime).year for p in files})
    assert len(issued) >= 3, issued
    for p in files:
        if p.suffix == ".csv":
            raw = p.read_bytes()
            assert raw.startswith(b"\xef\xbb\xbf"), p.name
            assert raw.count(b"\n") == raw.count(b"\r\n"), p.name


def test_exports_carry_the_assessment_systems_quirks(export_rows):
    rows = [row for _, row in export_rows]
    names = {r["Factory.Assessed.Name"] for r in rows}
    assert any(n.endswith("(Obsolete)") for n in names)
    assert any(ARABIC_SCRIPT.search(n) for n in names) and any(n.isascii() for n in names)
    spellings = {r["CP"] for r in rows if r["CP"].strip().lower() == "overtime"}
    assert {"Overtime", "OVERTIME", "overtime"} <= spellings
    assert any(s != s.strip() for s in {r["CP"] for r in rows}), "some CP values carry stray spaces"
    assert any("  " in s.strip() for s in {r["CP"] for r in rows}), "some CP values have doubled spaces"
    assert any(r["Question.type"] == "FGW" and r["Finding"] for r in rows)
    clusters = {cluster for cluster, _ in read_points()}
    assert {r["Cluster"] for r in rows} == clusters, "every row, FGW included, names one of the 8 clusters"
    assert any(r["Question.type"] == "NCQ" and r["Finding"] == "" for r in rows)
    assert any(r["Tags"] == "Public Disclosure" for r in rows)
    ids: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        ids[r["TQ.Name"]].add(r["Question.ID"])
    assert set(ids) == {"Garment CAT", "Garment CAT V2"}
    assert not ids["Garment CAT"] & ids["Garment CAT V2"]
    v1_points = {r["CP"].strip().lower() for r in rows if r["TQ.Name"] == "Garment CAT"}
    assert "occupational safety and health management systems" in v1_points
    for r in rows:
        assert re.fullmatch(r"\d{2}/\d{2}/\d{4}", r["Assesment.Start.Date"])


def test_corrections_export_repeats_assessments_with_changed_findings(export_rows):
    seen: dict[tuple[str, str], tuple[str, str]] = {}
    changed = 0
    for name, row in export_rows:
        key = (row["Quest.ID"], row["Question.ID"])
        if key in seen and seen[key][0] != name and seen[key][1] != row["Finding"]:
            changed += 1
        seen[key] = (name, row["Finding"])
    assert changed > 0


def test_superseded_assessment_of_the_same_factory_and_cycle_is_present(export_rows):
    quests: dict[tuple[str, str], set[str]] = defaultdict(set)
    for _, row in export_rows:
        if not row["Factory.Assessed.Name"].endswith("(Obsolete)"):
            quests[(row["Factory.Assessed.ID"], row["Cycle"])].add(row["Quest.ID"])
    assert any(len(q) > 1 for q in quests.values())


# --------------------------------------------------------------------------- database quirks


def test_case_management_carries_history_deletions_and_legacy_values(demo):
    _, url = demo
    genders = {r[0] for r in _all(url, "select distinct gender from training_participants")}
    assert {"F", "M", "female", "male"} <= genders
    old = _one(
        url,
        """select bool_and(s.starts_on < date '2023-01-01')
           from training_participants p join training_sessions s using (session_id)
           where p.gender in ('F', 'M')""",
    )
    assert old
    for table in ("factories", "advisory_visits", "training_sessions", "training_participants"):
        assert _one(url, f"select count(*) from {table} where deleted_at is not null") > 0, table
    for table in ("factories", "advisory_visits", "training_participants", "improvement_items"):
        assert _one(url, f"select count(*) from {table} where updated_at > created_at") > 0, table
    assert _one(url, "select count(*) from training_participants where factory_id is null") == 0
    multi = _one(
        url,
        """select count(*) from (
               select s.session_id from training_sessions s join training_participants p using (session_id)
               where s.factory_id is null group by 1 having count(distinct p.factory_id) > 1) x""",
    )
    assert multi > 0
    repeaters = _one(
        url,
        """select count(*) from (select person_ref from training_participants
           group by 1 having count(distinct session_id) > 1) x""",
    )
    assert repeaters > 500
    assert _one(url, "select count(*) from factory_brands") > 121
    names = [r[0] for r in _all(url, "select name from factories where deleted_at is null")]
    assert any(ARABIC_SCRIPT.search(n) for n in names) and sum(n.isascii() for n in names) > 90
    assert _one(url, "select count(*) from factories where os_id is null") > 0
    assert _one(url, r"select bool_and(os_id ~ '^PK\d{7}[A-Z]{5}\d$') from factories where os_id is not null")


def test_personal_data_is_fake_but_well_formed(demo):
    _, url = demo
    assert _one(url, r"select bool_and(cnic ~ '^\d{5}-\d{7}-\d$') from training_participants")
    assert _one(url, r"select bool_and(phone ~ '^\+92 3\d{2} \d{7}$') from training_participants")
    assert _one(url, "select count(distinct full_name) from training_participants") > 1000
    # one person keeps the same name, CNIC and phone across sessions
    assert (
        _one(
            url,
            """select count(*) from (select person_ref from training_participants
           group by 1 having count(distinct (full_name, cnic, phone)) > 1) x""",
        )
        == 0
    )


# --------------------------------------------------------------------------- scale


def test_scale_2_doubles_every_figure(pg_server_url, tmp_path):
    url = db.with_database(pg_server_url, f"bwtest_demo_{uuid.uuid4().hex[:10]}")
    try:
        generate(tmp_path, url, scale=2, seed=2025, only_if_empty=False)
        rows = [(p.name, row) for p in _export_files(tmp_path) for row in _read(p)]
        assert len(_counted_assessments(rows)) == 2 * 184
        assert _one(url, "select count(*) from factories where deleted_at is null") == 2 * 121
        assert _one(url, "select count(*) from brands") == 2 * 19
        assert _one(url, "select count(*) from advisory_visits where deleted_at is null") == 2 * 1200
        assert _one(url, "select count(*) from training_sessions where deleted_at is null") == 2 * 500
        people = _one(
            url,
            """select count(distinct p.person_ref)
               from training_participants p join training_sessions s using (session_id)
               where p.attended and p.deleted_at is null and s.deleted_at is null""",
        )
        assert people >= 2 * 6000
    finally:
        db.drop_database(url)


# --------------------------------------------------------------------------- idempotence


def _fingerprint(landing: Path, url: str) -> tuple[dict[str, str], dict[str, str]]:
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in _export_files(landing)}
    tables = {}
    with psycopg.connect(url) as conn:
        for table in (
            "factories",
            "advisory_visits",
            "training_sessions",
            "training_participants",
            "factory_brands",
            "improvement_items",
            "picc_meetings",
            "brands",
            "courses",
        ):
            tables[table] = conn.execute(
                "select count(*)::text || ':' || "
                f"md5(coalesce(string_agg(t::text, '|' order by t::text), '')) from {table} t"
            ).fetchone()[0]
    return files, tables


def test_generating_twice_into_the_same_place_changes_nothing(pg_server_url, tmp_path):
    url = db.with_database(pg_server_url, f"bwtest_demo_{uuid.uuid4().hex[:10]}")
    try:
        generate(tmp_path, url, scale=1, seed=99, only_if_empty=False)
        first = _fingerprint(tmp_path, url)
        again = generate(tmp_path, url, scale=1, seed=99, only_if_empty=False)
        assert "skipped" in again["case_management"]
        assert _fingerprint(tmp_path, url) == first
        # a rewrite from scratch (files and tables removed): the same bytes and rows come back
        for p in _export_files(tmp_path):
            p.unlink()
        with psycopg.connect(url, autocommit=True) as conn:
            for table in (*TABLES, "demo_generation"):
                conn.execute(f"drop table public.{table}")
        generate(tmp_path, url, scale=1, seed=99, only_if_empty=False)
        assert _fingerprint(tmp_path, url) == first
        skipped = generate(tmp_path, url, scale=1, seed=99)
        assert "skipped" in skipped["assessment_exports"] and "skipped" in skipped["case_management"]
    finally:
        db.drop_database(url)


def test_a_database_with_foreign_rows_is_not_overwritten(fresh_ops_database, tmp_path):
    with psycopg.connect(fresh_ops_database, autocommit=True) as conn:
        conn.execute("create table public.factories (factory_id int primary key, name text)")
        conn.execute("insert into public.factories values (1, 'real factory')")
    with pytest.raises(NotDemoData):
        generate(tmp_path, fresh_ops_database, only_if_empty=False)
    assert _one(fresh_ops_database, "select name from factories") == "real factory"


def test_survey_waves_are_written_beside_the_exports_a_few_percent_of_their_rows(demo, export_rows):
    """Survey files (docs/SURVEYS.md): CSV with BOM and CRLF for workers, XLSX for managers, 3 waves
    and a re-export, a few percent of the export rows, only registry factories of the demo."""
    landing, url = demo
    files = sorted(p.name for p in (landing / "surveys").iterdir() if not p.name.startswith("."))
    assert [f.split("_")[0] for f in files].count("worker") == 4 and any("reexport" in f for f in files)
    assert all(f.endswith(".xlsx") for f in files if f.startswith("manager")) and len(files) == 7
    worker = next(p for p in (landing / "surveys").iterdir() if p.name.startswith("worker_wave1"))
    head = worker.read_bytes()[:4096]
    assert head.startswith(b"\xef\xbb\xbf") and b"\r\n" in head
    rows = [r for f in files for r in _read(landing / "surveys" / f)]
    assert 0.02 * len(export_rows) < len(rows) < 0.06 * len(export_rows)
    registry = {
        r[0] for r in _all(url, "select factory_id::text from public.factories where deleted_at is null")
    }
    assert {r["factory_id"] for r in rows} <= registry
    assert {r["wave"] for r in rows} == {"1", "2", "3"}
