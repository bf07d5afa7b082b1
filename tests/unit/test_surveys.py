"""Survey waves without a database: instruments and crosswalk, file names, raw DDL, the demo's
survey files, the release's codebook entries."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from include.config import PROJECT_DIR
from include.extract import surveys
from include.serve import release


def test_file_names_give_instrument_and_wave():
    assert surveys.parse_name("worker_wave3_2025-02-14.csv") == surveys.SurveyFile("worker", 3, "2025-02-14")
    assert surveys.parse_name("Manager_wave12_2025-02-14_reexport.xlsx").instrument == "manager"
    for bad in ("wave3_2025-02-14.csv", "employer_wave3_2025-02-14.csv", "worker_w3_2025-02-14.csv"):
        with pytest.raises(surveys.BadName):
            surveys.parse_name(bad)


def test_the_crosswalk_maps_every_version_onto_the_same_questions():
    for instrument in surveys.INSTRUMENTS:
        by_version: dict[str, list[str]] = {}
        for i, version, _source, question in surveys.crosswalk():
            if i == instrument:
                by_version.setdefault(version, []).append(question)
        assert set(by_version) == {"2024.1", "2025.1"}
        questions = [sorted(q) for q in by_version.values()]
        assert all(q == questions[0] for q in questions) and len(set(questions[0])) == len(questions[0])
    old = {(v, s): q for i, v, s, q in surveys.crosswalk() if i == "worker"}
    assert (
        old[("2024.1", "concerns/verbal")]
        == old[("2025.1", "concerns/verbal_abuse")]
        == "concern_verbal_abuse"
    )
    assert old[("2024.1", "wellbeing/satisfaction")] == "life_satisfaction"
    # personal columns are raw only: never in the crosswalk, so never staged
    assert not {s for _, _, s, _ in surveys.crosswalk()} & {"respondent/name", "respondent/phone"}


def test_renamed_questions_are_not_required_but_the_core_is():
    required = surveys.required_columns("worker")
    assert set(surveys.CORE_COLUMNS) <= set(required) and "respondent/age" in required
    assert not {"concerns/verbal", "concerns/verbal_abuse", "wellbeing/satisfaction"} & set(required)


def test_raw_tables_in_warehouse_sql_match_the_instruments():
    ddl = (PROJECT_DIR / "include" / "sql" / "warehouse.sql").read_text()
    for instrument in surveys.INSTRUMENTS:
        body = re.search(
            rf"create table if not exists {surveys.raw_table(instrument)} \((.*?)\n\);", ddl, re.S
        )
        assert body, instrument
        names = [
            m.strip().split(" text")[0].strip('"') for m in body[1].split(",") if m.strip().endswith("text")
        ]
        assert tuple(names) == surveys.raw_columns(instrument)


@pytest.fixture(scope="module")
def demo_files():
    from include.demo import plan
    from include.demo import surveys as demo_surveys

    return demo_surveys.survey_files(plan.build(2025, 1))


def test_demo_surveys_have_both_versions_a_reexport_refusals_and_a_child(demo_files):
    names = [f.name for f in demo_files]
    assert sum(n.startswith("worker_wave") for n in names) == 4  # 3 waves and one re-export
    assert any(n.endswith(".xlsx") for n in names) and any("reexport" in n for n in names)
    rows = [
        dict(zip(f.header, r, strict=True)) for f in demo_files if f.name.startswith("worker") for r in f.rows
    ]
    assert {r["_form_version"] for r in rows} == {"2024.1", "2025.1"}
    assert any(r["consent"] == "no" for r in rows)
    consenting = [r for r in rows if r["consent"] == "yes"]
    assert any(r.get("hours/last_week") == "" for r in consenting)  # a refused answer
    assert any(r.get("respondent/age") == 13 for r in rows)  # a respondent under 14
    # a few percent of the 45,907 export rows of scale 1
    total = sum(len(f.rows) for f in demo_files)
    assert 1_000 < total < 2_500, total


def test_demo_surveys_are_deterministic(demo_files):
    from include.demo import plan
    from include.demo import surveys as demo_surveys

    again = demo_surveys.survey_files(plan.build(2025, 1))
    assert [(f.name, f.rows) for f in again] == [(f.name, f.rows) for f in demo_files]
    other = demo_surveys.survey_files(plan.build(7, 1))
    assert [f.rows for f in other] != [f.rows for f in demo_files]


def test_release_codebook_has_every_survey_outcome(tmp_path: Path):
    columns = [
        "factory_key", "wave", "assessment_cycle", "respondents", "female_respondents",
        *(f"share_{c}_concern" for c in ("verbal_abuse", "sexual_harassment", "physical_abuse", "low_wages",
                                         "late_payment", "excessive_overtime")),
        "mean_life_satisfaction", "mean_hours_last_week", "share_over_60_hours", "share_with_payslip",
        "share_knows_picc", "monthly_turnover_pct", "absenteeism_pct", "line_efficiency_pct",
        "is_suppressed", "suppressed_measures",
    ]  # fmt: skip
    tables = [
        release.Table("factory_wave_outcomes", "", [release.Column(c, "text", "") for c in columns]),
        release.Table("programme_kpis", "", [release.Column("is_suppressed", "boolean", "")]),
    ]
    release.write_codebook(tables, tmp_path)
    with open(tmp_path / "codebook.csv", encoding="utf-8") as f:
        rows = {r["column"]: r for r in csv.DictReader(f)}
    assert set(columns) - {"factory_key"} <= set(rows)
    assert all(rows[c]["meaning"] and rows[c]["tables"] == "factory_wave_outcomes" for c in columns[1:])
