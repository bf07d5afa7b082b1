"""``bw run`` end to end under a pipeline login that is not a superuser, on the demo (scale 1;
scale 10 in ``make test-system``) with canaries planted in the case-management source: a
participant's name, CNIC and phone (one valid row, one that validation rejects), and in a survey
wave: a worker respondent's name and phone (one valid submission, one record the parser
quarantines). Afterwards no table outside ``raw`` (and the per-batch ``stage`` tables on their way
into it), no file of the run (releases, Data Docs and the GX store, dbt docs, Airflow's home with
its logs, the run's full log) and nothing the run printed holds them; the release passes the
disclosure checks, and the survey outcomes in research suppress every figure built from fewer than
10 respondents.

What the rejected row's canaries test is the masking of quarantined rows and of validation results
(``include/personal_data.mask_record``, applied by the loaders).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from psycopg import sql

from include import db
from tests.integration import disclosure

CANARIES = {
    "name": "Zzcanary Nargis Qadeer",
    "cnic": "35299-8765432-1",
    "phone": "+92 399 7654321",
    "bad_name": "Zzcanary Rejected Person",
    "bad_cnic": "35299-87X5432-9",  # fails the CNIC rule: the row is rejected
    "bad_phone": "+92 399 1212121",
    "survey_name": "Zzcanary Survey Respondent",
    "survey_phone": "+92 398 4455667",
    "bad_survey_name": "Zzcanary Survey Quarantined",
    "bad_survey_phone": "+92 398 9988776",
}
KEY = "pipeline-privacy-test-key-0123456789abcdef"
SCALES = [1, pytest.param(10, marks=pytest.mark.system)]
"""Demo scales: 1 in ``make test``; the same checks on scale 10 (about 5 minutes more) in
``make test-system``."""


def plant(ops_url: str) -> None:
    with db.connect(ops_url) as conn:
        session, factory = conn.execute(
            "select s.session_id, s.factory_id from public.training_sessions s"
            " where s.deleted_at is null and s.factory_id is not null order by s.session_id limit 1"
        ).fetchone()
        top = conn.execute("select max(participant_id) from public.training_participants").fetchone()[0]
        for offset, (name, cnic, phone) in enumerate(
            [
                (CANARIES["name"], CANARIES["cnic"], CANARIES["phone"]),
                (CANARIES["bad_name"], CANARIES["bad_cnic"], CANARIES["bad_phone"]),
            ],
            start=1,
        ):
            conn.execute(
                "insert into public.training_participants (participant_id, session_id, person_ref,"
                " full_name, cnic, phone, gender, role, factory_id, attended, pre_score, post_score)"
                " values (%s, %s, %s, %s, %s, %s, 'female', 'union_rep', %s, true, 41, 77)",
                (top + offset, session, f"ZZCANARYREF{offset}", name, cnic, phone, factory),
            )


def plant_survey(landing: Path, ops_url: str) -> None:
    """A late wave-3 worker file: one consenting respondent, one record with a field too many."""
    import csv

    from include.demo.surveys import _header

    with db.connect(ops_url) as conn:
        (factory,) = conn.execute(
            "select factory_id from public.factories where deleted_at is null order by factory_id limit 1"
        ).fetchone()
    header = _header("worker", {"2025.1"})
    good = dict.fromkeys(header, "")
    good.update(
        {
            "_uuid": "zzcanary-0001",
            "_submission_time": "2025-07-20T09:00:00Z",
            "_form_version": "2025.1",
            "wave": "3",
            "factory_id": str(factory),
            "consent": "yes",
            "respondent/name": CANARIES["survey_name"],
            "respondent/phone": CANARIES["survey_phone"],
            "respondent/gender": "female",
            "respondent/age": "31",
            "hours/last_week": "61",
            "concerns/verbal_abuse": "2",
        }
    )
    bad = dict(good, **{"_uuid": "zzcanary-0002", "respondent/name": CANARIES["bad_survey_name"]})
    bad["respondent/phone"] = CANARIES["bad_survey_phone"]
    with (landing / "surveys" / "worker_wave3_2025-08-30_late.csv").open(
        "w", encoding="utf-8-sig", newline=""
    ) as f:
        writer = csv.writer(f, lineterminator="\r\n")
        writer.writerow(header)
        writer.writerow([good[c] for c in header])
        writer.writerow([bad[c] for c in header] + ["a field too many"])


@pytest.fixture(scope="module", params=SCALES, ids=lambda scale: f"scale{scale}")
def run(request, pg_server_url, tmp_path_factory):
    scale = request.param
    suffix = uuid.uuid4().hex[:8]
    login = f"bwtest_pipeline_{suffix}"
    password = f"pw-{uuid.uuid4().hex}"  # must never be printed or written anywhere
    warehouse_db = f"bwtest_np_wh_{suffix}"
    ops_url = db.with_database(pg_server_url, f"bwtest_np_ops_{suffix}")
    work = tmp_path_factory.mktemp("privacy-e2e")
    with db.connect(pg_server_url, autocommit=True) as conn:
        # the pipeline's login: no superuser; may create roles; owns the warehouse database
        conn.execute(
            sql.SQL("create role {} login createrole password {}").format(
                sql.Identifier(login), sql.Literal(password)
            )
        )
        conn.execute(
            sql.SQL("create database {} owner {}").format(sql.Identifier(warehouse_db), sql.Identifier(login))
        )
        # what a DBA does once (docs/ACCESS.md): the pipeline roles, administered by the login
        for role in ("loader", "transformer", "analyst", "researcher"):
            if not conn.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone():
                conn.execute(sql.SQL("create role {} nologin").format(sql.Identifier(role)))
            conn.execute(
                sql.SQL("grant {} to {} with admin option").format(
                    sql.Identifier(role), sql.Identifier(login)
                )
            )
    warehouse_url = db.to_url(
        {**db.parts(pg_server_url), "user": login, "password": password, "dbname": warehouse_db}
    )
    env = {
        **os.environ,
        "WAREHOUSE_URL": warehouse_url,
        "OPS_DATABASE_URL": ops_url,
        "LANDING_DIR": str(work / "landing"),
        "AIRFLOW_HOME": str(work / "airflow"),
        "RELEASE_DIR": str(work / "releases"),
        "DOCS_DIR": str(work / "docs"),
        "LOG_DIR": str(work / "logs"),
        "PSEUDONYM_KEY": KEY,
        "DEMO": "1",
        "SCALE": str(scale),
    }
    try:
        from include import demo

        db.ensure_database(ops_url)
        demo.generate(work / "landing", ops_url, scale=scale)
        plant(ops_url)
        plant_survey(work / "landing", ops_url)
        bw = Path(sys.executable).with_name("bw")
        proc = subprocess.run([str(bw), "run"], env=env, capture_output=True, text=True, timeout=1500)
        yield {"proc": proc, "url": warehouse_url, "work": work, "login": login, "password": password}
    finally:
        db.drop_database(warehouse_url)
        db.drop_database(ops_url)
        with db.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(login)))


def test_the_pipeline_runs_end_to_end_without_superuser(run):
    proc = run["proc"]
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-8000:]
    with db.connect(run["url"]) as conn:
        assert conn.execute("select rolsuper from pg_roles where rolname = current_user").fetchone() == (
            False,
        )
        assert conn.execute("select count(*) from research.factory_cycle_panel").fetchone()[0] > 0
        # PUBLIC may not connect to the warehouse nor create temporary tables in it
        acl = conn.execute(
            "select datacl::text from pg_database where datname = current_database()"
        ).fetchone()
        # an ACL entry of PUBLIC has no grantee: it starts with '='
        assert not any(entry.startswith("=") for entry in acl[0].strip("{}").split(","))
    releases = [p for p in (run["work"] / "releases").iterdir() if not p.name.startswith(".")]
    assert len(releases) == 1 and (releases[0] / "release.json").exists()


def _declared() -> dict[str, dict]:
    from include.transform import dbt as transform

    return disclosure.declared(transform.parse_manifest())


def test_research_tables_and_the_release_pass_the_disclosure_checks(run):
    declared = _declared()
    found = []
    with db.connect(run["url"], role="researcher") as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "select table_name from information_schema.tables where table_schema = 'research'"
            )
        ]
        for table in tables:
            cur = conn.execute(sql.SQL("select * from research.{}").format(sql.Identifier(table)))
            columns = [c.name for c in cur.description]
            data = [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]
            found += disclosure.problems(table, columns, data, declared.get(table), 5)
    folder = next(p for p in (run["work"] / "releases").iterdir() if not p.name.startswith("."))
    assert json.loads((folder / "release.json").read_text())["disclosure"]["k"] == 5
    for name, (table, columns, data) in disclosure.release_tables(folder).items():
        found += [f"{name}: {p}" for p in disclosure.problems(table, columns, data, declared.get(table), 5)]
    assert tables and found == []


def _tables_outside_raw(url: str) -> list[tuple[str, str, str]]:
    """(schema, table, where the canary was found) over every table but raw and stage."""
    hits = []
    with db.connect(url) as conn:
        tables = conn.execute(
            "select table_schema, table_name from information_schema.tables"
            " where table_schema not in ('pg_catalog', 'information_schema', 'raw', 'stage')"
            " and table_type in ('BASE TABLE', 'VIEW')"
        ).fetchall()
        for schema, table in tables:
            query = sql.SQL("select t::text from {}.{} as t").format(
                sql.Identifier(schema), sql.Identifier(table)
            )
            for (text,) in conn.execute(query):
                for label, canary in CANARIES.items():
                    if canary.lower() in text.lower():
                        hits.append((schema, table, label))
    return sorted(set(hits))


def test_no_table_outside_raw_holds_a_canary(run):
    with db.connect(run["url"]) as conn:
        in_raw = conn.execute(
            "select count(*) from raw.cm_training_participants where full_name like 'Zzcanary%'"
        )
        assert in_raw.fetchone()[0] >= 1  # they did arrive (so the scan below can see them)
        in_raw = conn.execute(
            "select count(*) from raw.survey_worker_rows where \"respondent/name\" like 'Zzcanary%'"
        )
        assert in_raw.fetchone()[0] == 1
        quarantined = conn.execute(
            "select count(*) from quarantine.rejected_rows where source = 'worker_wave3_2025-08-30_late.csv'"
        )
        assert quarantined.fetchone()[0] == 1
    assert _tables_outside_raw(run["url"]) == []


def test_no_file_or_log_of_the_run_holds_a_canary(run):
    hits = []
    work: Path = run["work"]
    for folder in ("releases", "docs", "airflow", "logs"):
        for path in (work / folder).rglob("*"):
            if not path.is_file():
                continue
            data = path.read_bytes()
            for label, canary in CANARIES.items():
                if canary.encode() in data or canary.lower().encode() in data.lower():
                    hits.append((str(path.relative_to(work)), label))
    printed = run["proc"].stdout + run["proc"].stderr
    hits += [("output of bw run", label) for label, canary in CANARIES.items() if canary in printed]
    assert hits == []


def test_the_run_never_prints_or_writes_the_password(run):
    password = run["password"]
    assert password not in run["proc"].stdout + run["proc"].stderr
    assert "psql" in run["proc"].stdout and "***" in run["proc"].stdout
    hits = []
    for folder in ("releases", "docs", "airflow", "logs"):
        for path in (run["work"] / folder).rglob("*"):
            if path.is_file() and password.encode() in path.read_bytes():
                hits.append(str(path.relative_to(run["work"])))
    assert hits == []


def test_research_survey_outcomes_suppress_every_figure_from_fewer_than_10_respondents(run, monkeypatch):
    """Every published share or mean of research.factory_wave_outcomes rests on at least 10 answers
    (counted in marts.fct_survey_response), and the table holds no respondent row."""
    from include import warehouse

    monkeypatch.setenv("PSEUDONYM_KEY", KEY)
    measures = {
        "share_verbal_abuse_concern": "concern_verbal_abuse",
        "share_sexual_harassment_concern": "concern_sexual_harassment",
        "share_physical_abuse_concern": "concern_physical_abuse",
        "share_low_wages_concern": "concern_low_wages",
        "share_late_payment_concern": "concern_late_payment",
        "share_excessive_overtime_concern": "concern_excessive_overtime",
        "mean_life_satisfaction": "life_satisfaction",
        "mean_hours_last_week": "hours_last_week",
        "share_over_60_hours": "hours_last_week",
        "share_with_payslip": "has_payslip",
        "share_knows_picc": "knows_picc",
    }
    answered = ", ".join(f"count({a}) as n_{m}" for m, a in measures.items())
    with warehouse.connect_keyed(run["url"]) as conn:
        cur = conn.execute(
            "select r.*, a.* from research.factory_wave_outcomes r left join ("
            " select private.pseudonym('factory', factory_id::text) as k, wave as w, count(*) as n,"
            f" {answered} from marts.fct_survey_response group by 1, 2) a"
            " on a.k = r.factory_key and a.w = r.wave"
        )
        columns = [c.name for c in cur.description]
        rows = [dict(zip(columns, r, strict=True)) for r in cur.fetchall()]
    assert rows and not {"response_key", "age_band", "gender"} & set(columns)
    published = suppressed = 0
    for row in rows:
        assert row["respondents"] == (row["n"] or 0)
        assert row["female_respondents"] is None or row["respondents"] >= 10
        for measure in measures:
            if row[measure] is not None:
                assert row[f"n_{measure}"] >= 10, (measure, row)
                published += 1
            elif (row[f"n_{measure}"] or 0) > 0:
                assert row["is_suppressed"] and measure in row["suppressed_measures"]
                suppressed += 1
    assert published and suppressed  # the demo has both
