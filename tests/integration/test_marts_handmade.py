"""The marts, built by a real ``dbt build`` from a small hand-made set of sources.

The sources (``tests/fixtures/handmade/*.csv``) go straight into the raw tables of a throwaway
warehouse; the survey export files (``tests/fixtures/handmade/surveys/``) go through the survey
loader (the real file machinery and GX suites). The right answers were worked out by hand
(``tests/fixtures/handmade/README.md``) and sit beside them as ``expected_*.csv``. Every row and
every column of ``cp_noncompliance_rate``, ``factory_cycle_panel``, ``programme_kpis``, the social
dialogue and remediation marts (``fct_picc_meeting``, ``factory_social_dialogue``,
``fct_improvement_item``, ``factory_remediation``) and ``factory_wave_outcomes`` is compared;
rates are written as fractions. The run's date ("as of") is fixed at ``AS_OF`` through the dbt
var ``as_of``.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from fractions import Fraction
from pathlib import Path

import pytest
from psycopg import sql

from include import db
from include.contract import RAW_TABLES
from include.transform import dbt as transform

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "handmade"
MART_KEYS = {
    "cp_noncompliance_rate": ("panel", "cycle", "compliance_point"),
    "factory_cycle_panel": ("factory_id", "cycle"),
    "programme_kpis": ("period",),
    "fct_picc_meeting": ("meeting_id",),
    "factory_social_dialogue": ("factory_id", "year"),
    "fct_improvement_item": ("item_id",),
    "factory_remediation": ("factory_id", "cycle"),
    "factory_wave_outcomes": ("factory_id", "wave"),
}
AS_OF = "2024-12-31"
SURVEY_LOAD: dict = {}


def load_handmade_sources(url: str) -> None:
    """COPY every fixture CSV into its raw table (empty unquoted fields become NULL)."""
    with db.connect(url) as conn:
        for table in RAW_TABLES:
            path = FIXTURES / f"{table}.csv"
            with path.open(newline="") as fh:
                header = next(csv.reader(fh))
            copy = sql.SQL("copy raw.{} ({}) from stdin with (format csv, header true)").format(
                sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, header))
            )
            with conn.cursor().copy(copy) as cp:
                cp.write(path.read_bytes())


def load_handmade_surveys(url: str, landing: Path) -> dict:
    """The survey fixture files through the survey loader, GX included; returns its summary.

    Batch ids start above the hand-made raw rows' ``_batch_id`` values (audit.load_batches is empty
    until now), so that no export row finds a survey batch's export date.
    """
    import shutil

    from include.load import surveys as load_surveys

    folder = landing / "surveys"
    folder.mkdir(parents=True)
    for path in sorted((FIXTURES / "surveys").iterdir()):
        shutil.copy2(path, folder / path.name)
    with db.connect(url) as conn:
        conn.execute("select setval('audit.load_batches_batch_id_seq', 1000)")
    return load_surveys.load_survey_files(url, landing, min_age_seconds=0, settle_seconds=0)


def _expected_value(text: str):
    """A cell of an expected file: empty = null, `a/b` = exact fraction, true/false, else int or text."""
    if text == "":
        return None
    if text in ("true", "false"):
        return text == "true"
    if "/" in text or text.lstrip("-").isdigit():
        return Fraction(text)
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return text


def _same(actual, expected) -> bool:
    if expected is None or actual is None:
        return actual is expected
    if isinstance(expected, Fraction):
        return math.isclose(float(actual), float(expected), rel_tol=1e-9, abs_tol=1e-12)
    return actual == expected


def _compare(conn, mart: str) -> None:
    with (FIXTURES / f"expected_{mart}.csv").open(newline="") as fh:
        expected_rows = list(csv.DictReader(fh))
    columns = list(expected_rows[0])
    cur = conn.execute(sql.SQL("select * from marts.{}").format(sql.Identifier(mart)))
    actual_columns = [c.name for c in cur.description]
    assert set(columns) <= set(actual_columns), f"{mart}: missing columns"
    key = MART_KEYS[mart]
    actual = {
        tuple(str(r[c]) for c in key): r for r in (dict(zip(actual_columns, row, strict=True)) for row in cur)
    }
    expected = {tuple(r[c] for c in key): r for r in expected_rows}
    assert sorted(actual) == sorted(expected), f"{mart}: rows differ"
    mismatches = [
        (k, column, actual[k][column], cells[column])
        for k, cells in expected.items()
        for column in columns
        if not _same(actual[k][column], _expected_value(cells[column]))
    ]
    assert not mismatches, f"{mart}: (key, column, actual, expected): {mismatches}"


@pytest.fixture(scope="module")
def built_marts(tmp_path_factory, pg_server_url):
    """One throwaway warehouse with the hand-made sources, built once for the module's tests."""
    import os

    from include import warehouse

    url = db.with_database(pg_server_url, f"bwtest_marts_{os.getpid()}")
    db.drop_database(url)
    db.ensure_database(url)
    work = tmp_path_factory.mktemp("handmade")
    previous = {k: os.environ.get(k) for k in ("PSEUDONYM_KEY", "DOCS_DIR")}
    os.environ["PSEUDONYM_KEY"] = "test-key-not-secret-0123456789abcdef"
    os.environ["DOCS_DIR"] = str(work / "docs")
    try:
        warehouse.bootstrap(url)
        load_handmade_sources(url)
        surveys = load_handmade_surveys(url, work / "landing")
        target = tmp_path_factory.mktemp("dbt_target")
        run = transform.run_dbt(["build", "--vars", f"{{as_of: '{AS_OF}'}}"], url, target_path=target)
        SURVEY_LOAD.clear()
        SURVEY_LOAD.update(surveys)  # the survey loader's summary, for the survey tests below
        yield url, run
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        db.drop_database(url)


@pytest.mark.parametrize("mart", sorted(MART_KEYS))
def test_every_figure_matches_the_hand_worked_answer(built_marts, mart):
    url, _ = built_marts
    with db.connect(url) as conn:
        _compare(conn, mart)


def test_dbt_build_ran_every_test_and_unit_test(built_marts):
    _, run = built_marts
    statuses = [r["status"] for r in run.run_results()["results"]]
    unit_tests = [r for r in run.run_results()["results"] if r["unique_id"].startswith("unit_test.")]
    assert run.ok
    assert "error" not in statuses and "fail" not in statuses
    assert len(unit_tests) >= 10


def test_export_only_and_obsolete_factories_stay_flagged(built_marts):
    url, _ = built_marts
    with db.connect(url) as conn:
        rows = conn.execute(
            "select factory_id, in_registry, is_obsolete, is_deleted from marts.dim_factory order by 1"
        ).fetchall()
    assert rows == [
        (101, True, False, False),
        (102, True, False, False),
        (103, True, False, False),
        (104, True, False, True),
        (105, True, False, False),
        (106, True, False, False),
        (201, False, False, False),
        (901, False, True, False),
    ]


def test_compliance_point_spellings_resolve_and_unknown_stays_null(built_marts):
    url, _ = built_marts
    with db.connect(url) as conn:
        rows = dict(
            conn.execute(
                "select compliance_point_raw, compliance_point from marts.fct_finding"
                " where assessment_id in ('Q2', 'Q3', 'Q7') and question_type = 'NCQ'"
            ).fetchall()
        )
    assert rows["CHILD LABOURERS"] == "Child Labourers"
    assert rows["  Overtime   wages "] == "Overtime Wages"
    assert rows["Emergency  preparedness"] == "Emergency Preparedness"
    assert rows["Fire Safety"] is None


def test_participation_mart_holds_pseudonyms_not_personal_data(built_marts):
    from include import warehouse

    url, _ = built_marts
    with warehouse.connect_keyed(url) as conn:  # a session with the pseudonym key (never stored)
        columns = {
            r[0]
            for r in conn.execute(
                "select column_name from information_schema.columns where table_schema in"
                " ('marts', 'staging', 'intermediate', 'snapshots')"
            )
        }
        keys = conn.execute(
            "select distinct p.person_key = private.pseudonym('person', s.person_ref)"
            " from marts.fct_training_participation p"
            " join staging.stg_training_participants s using (participant_id)"
        ).fetchall()
    assert not columns & {"full_name", "cnic", "phone"}
    assert keys == [(True,)]


def test_marts_are_documented_in_the_database_and_readable_by_analysts(built_marts):
    url, _ = built_marts
    with db.connect(url) as conn:
        undocumented = conn.execute(
            """
            select c.relname, a.attname
            from pg_class c
            join pg_namespace n on n.oid = c.relnamespace and n.nspname = 'marts'
            join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
            where c.relkind = 'r' and (obj_description(c.oid, 'pg_class') is null
                                       or col_description(c.oid, a.attnum) is null)
            """
        ).fetchall()
        not_granted = conn.execute(
            """
            select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
            where n.nspname = 'marts' and c.relkind = 'r'
              and not has_table_privilege('analyst', c.oid, 'select')
            """
        ).fetchall()
        tables = conn.execute(
            "select count(*) from pg_tables where schemaname = 'marts' and tableowner = 'transformer'"
        ).fetchone()[0]
    assert undocumented == []
    assert not_granted == []
    assert tables == 15


def test_snapshot_keeps_the_history_of_changed_factory_attributes(built_marts):
    url, _ = built_marts
    with db.connect(url) as conn:
        history = conn.execute(
            "select workers_total, dbt_valid_to is null from snapshots.snap_factories where factory_id = 101"
        ).fetchall()
    # The first snapshot holds the latest version only; a second run after a change adds history.
    assert history == [(350, True)]
    with db.connect(url) as conn:
        conn.execute(
            "insert into raw.cm_factories (factory_id, name, enrolled_on, workers_total, workers_female,"
            " updated_at, _batch_id, _source, _source_row) values"
            " (101, 'Indus Knitwear', '2021-01-15', 420, 150, '2024-01-01', 12, 'public.factories', 1)"
        )
    _, run = built_marts
    transform.run_dbt(["snapshot"], url, target_path=run.target_path)
    with db.connect(url) as conn:
        history = conn.execute(
            "select workers_total, dbt_valid_to is null from snapshots.snap_factories"
            " where factory_id = 101 order by dbt_valid_from"
        ).fetchall()
    assert history == [(350, False), (420, True)]


# --------------------------------------------------------------------------- survey waves


def _one(url: str, query: str, params=()):
    with db.connect(url) as conn:
        return conn.execute(query, params).fetchall()


def test_survey_latest_export_wins_per_uuid(built_marts):
    url, _ = built_marts
    raw = _one(
        url, "select \"hours/last_week\" from raw.survey_worker_rows where _uuid = 'w1a' order by _batch_id"
    )
    assert raw == [("62",), ("58",)]  # the first file, then the re-export (XLSX) that corrected it
    staged = _one(
        url, "select hours_last_week from staging.stg_survey_worker_responses where response_id = 'w1a'"
    )
    assert staged == [(58,)]
    # every submission once, whichever files hold it: w1a and w1b are in both wave-1 files
    counts = _one(
        url, "select count(*), count(distinct response_id) from staging.stg_survey_worker_responses"
    )
    assert counts == [(13, 13)]


def test_survey_non_consent_is_kept_in_raw_and_counted_nowhere(built_marts):
    from include import warehouse

    url, _ = built_marts
    assert _one(url, "select count(*) from raw.survey_worker_rows where consent = 'no'") == [(2,)]
    assert _one(url, "select count(*) from raw.survey_manager_rows where consent = 'no'") == [(1,)]
    with warehouse.connect_keyed(url) as conn:
        refused = conn.execute(
            "select count(*) from marts.fct_survey_response where response_key in"
            " (private.pseudonym('survey_response', 'w1d'), private.pseudonym('survey_response', 'x4'))"
        ).fetchone()
    assert refused == (0,)
    assert _one(url, "select count(*) from marts.fct_survey_response") == [(11,)]
    assert _one(url, "select sum(respondents) from marts.factory_wave_outcomes") == [(11,)]
    # factory 201's only wave-1 submission is a manager's refusal: no wave-1 row at all
    assert _one(
        url, "select count(*) from marts.factory_wave_outcomes where factory_id = 201 and wave = 1"
    ) == [(0,)]


def test_survey_form_versions_map_through_the_crosswalk(built_marts):
    url, _ = built_marts
    rows = dict(
        (r[0], r[1:])
        for r in _one(
            url,
            "select response_id, form_version, concern_verbal_abuse, concern_sexual_harassment,"
            " life_satisfaction from staging.stg_survey_worker_responses where response_id in ('x1', 'x3')",
        )
    )
    # x3 answered on 2024.1 (concerns/verbal, concerns/sexual, wellbeing/satisfaction), x1 on 2025.1,
    # in the same file
    assert rows == {"x1": ("2025.1", 0, 1, 7), "x3": ("2024.1", 3, 0, 3)}


def test_survey_under_14_warning_is_recorded_and_names_no_one(built_marts):
    url, _ = built_marts
    found = _one(
        url,
        "select b.source_object, v.severity, v.success, v.unexpected_count, v.unexpected_values::text"
        " from audit.validation_results v join audit.load_batches b using (batch_id)"
        " where v.expectation = 'respondent under 14' order by b.batch_id",
    )
    flagged = {r[0]: r for r in found if not r[2]}
    assert set(flagged) == {"worker_wave1_2023-03-20.csv", "worker_wave1_2023-04-10_reexport.xlsx"}
    for _name, severity, _ok, count, values in flagged.values():
        assert severity == "warning" and count == 1 and '"w1b"' in values and "Zzsurvey" not in values
    assert any(w["rule"] == "respondent under 14" for w in SURVEY_LOAD["warnings"])
    messages = _one(
        url, "select message from audit.load_batches where source_object = 'worker_wave1_2023-03-20.csv'"
    )
    assert "respondent under 14" in messages[0][0]
    # the unknown factory 999 is warned about too, and its rows load
    assert any(w["rule"] == "factory known to the registry" for w in SURVEY_LOAD["warnings"])


def test_survey_batches_account_for_every_row(built_marts):
    url, _ = built_marts
    batches = _one(
        url,
        "select source_object, status, rows_read, rows_loaded, rows_quarantined from audit.load_batches"
        " where source = 'survey_files' order by batch_id",
    )
    assert len(batches) == 5 and all(b[1] == "loaded" for b in batches)
    assert all(b[2] == b[3] + b[4] for b in batches)
    assert sum(b[3] for b in batches) == 15 + 6  # worker rows 7 + 3 + 5, manager rows 5 + 1
    assert _one(url, "select count(*) from raw.survey_worker_rows") == [(15,)]
    assert SURVEY_LOAD["rows_loaded"] == 21


def test_survey_names_and_phones_never_leave_raw(built_marts):
    url, _ = built_marts
    with db.connect(url) as conn:
        tables = conn.execute(
            "select table_schema, table_name from information_schema.tables"
            " where table_schema in ('staging', 'intermediate', 'marts', 'research', 'quarantine', 'audit')"
        ).fetchall()
        leaks = []
        for schema, table in tables:
            hit = conn.execute(
                sql.SQL(
                    "select count(*) from {} as t where t::text like '%Zzsurvey%' or t::text like '%301 111%'"
                ).format(sql.Identifier(schema, table))
            ).fetchone()[0]
            if hit:
                leaks.append((schema, table, hit))
    assert leaks == []
    assert _one(
        url, "select count(*) from raw.survey_worker_rows where \"respondent/name\" like 'Zzsurvey%%'"
    ) == [(15,)]
