"""include.transform.dbt: dbt's profile from a warehouse URL, runs isolated by target path, docs site."""

from __future__ import annotations

from include import db
from include.transform import dbt as transform


def test_dbt_env_carries_every_part_of_the_url():
    env = transform.dbt_env("postgresql://bw%40user:s%3Acret@db.example.org:6543/wh")
    assert env["WAREHOUSE_HOST"] == "db.example.org"
    assert env["WAREHOUSE_PORT"] == "6543"
    assert env["WAREHOUSE_USER"] == "bw@user"
    assert env["WAREHOUSE_PASSWORD"] == "s:cret"
    assert env["WAREHOUSE_DBNAME"] == "wh"
    assert env["DBT_PROFILES_DIR"] == str(transform.DBT_PROJECT_DIR)


def test_dbt_env_without_password_gives_an_empty_one():
    assert transform.dbt_env("postgresql://postgres@127.0.0.1:5432/x")["WAREHOUSE_PASSWORD"] == ""


def test_build_on_empty_raw_tables_then_static_docs(warehouse_db, tmp_path):
    """Everything builds (and every test passes) before any source was loaded; docs open offline."""
    run = transform.build(warehouse_db, target_path=tmp_path / "target")
    assert run.ok and run.database_seconds() > 0
    assert (tmp_path / "target" / "run_results.json").exists()  # not dbt_project/target
    page = transform.generate_docs(warehouse_db, tmp_path / "docs")
    html = page.read_text()
    assert page == tmp_path / "docs" / "index.html"
    assert "programme_kpis" in html and "cp_noncompliance_rate" in html
    with db.connect(warehouse_db) as conn:
        kpis = conn.execute(
            "select period, factories_engaged, assessments, training_participants from marts.programme_kpis"
        ).fetchall()
        owner = conn.execute(
            "select tableowner from pg_tables where schemaname = 'marts' and tablename = 'dim_factory'"
        ).fetchone()
    assert kpis == [("all", 0, 0, 0)]
    assert owner == ("transformer",)


def test_a_failing_build_raises_with_dbt_output(warehouse_db, tmp_path):
    with db.connect(warehouse_db) as conn:
        # a question type outside NCQ/FGW breaks an error-severity test of staging
        conn.execute(
            """insert into raw.assessment_export_rows ("Quest.ID", "Question.ID", "Factory.Assessed.ID",
               "Assesment.Start.Date", "Cycle", "Question.type", "Finding", _batch_id, _source, _source_row)
               values ('Q1', '1', '5', '01/01/2024', '1', 'XYZ', '1', 1, 'f.csv', 2)"""
        )
    try:
        transform.build(warehouse_db, target_path=tmp_path / "target")
    except transform.DbtError as err:
        assert "accepted_values_stg_assessment_export_rows_question_type" in str(err)
    else:
        raise AssertionError("dbt build passed on a question type outside NCQ/FGW")
