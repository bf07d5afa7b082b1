"""Incremental models give exactly the marts of a full refresh.

The demo sources are loaded and built; then a corrections export (corrected findings, a new
assessment of an existing factory and cycle with a later start date, a record of a corrected
assessment rejected), an older export dropped late (it must lose), and case-management updates and
deletions (participants, sessions, visits, a factory) are loaded and built incrementally. Every
table of ``marts`` and ``research`` is then compared, cell by cell, with a ``--full-refresh`` build
of the same raw data.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

from include import db, demo, load
from include.extract import case_management as extract_ops
from include.transform import dbt as transform

INCREMENTAL_MODELS = (
    "stg_assessment_export_rows",
    "stg_training_participants",
    "fct_finding",
    "fct_training_participation",
)


def _load_everything(url: str, ops_url: str, landing: Path) -> None:
    load.load_assessment_exports(url, landing, validate=False)
    for table in extract_ops._TABLES:
        load.load_case_management_table(url, ops_url, table, validate=False)
    with db.connect(url) as conn:
        # interface 1 (export date from the file name) whether or not the loader sets it already
        conn.execute(
            "update audit.load_batches set exported_on = substring(source_object from"
            " '[0-9]{4}-[0-9]{2}-[0-9]{2}')::date where exported_on is null"
            " and source_object ~ '[0-9]{4}-[0-9]{2}-[0-9]{2}'"
        )


def _snapshot(url: str) -> dict[str, list[tuple]]:
    """Every row of every table of marts and research, in a canonical order."""
    tables: dict[str, list[tuple]] = {}
    with db.connect(url) as conn:
        names = conn.execute(
            "select table_schema, table_name from information_schema.tables"
            " where table_schema in ('marts', 'research') and table_type = 'BASE TABLE' order by 1, 2"
        ).fetchall()
        for schema, name in names:
            rows = conn.execute(f'select * from "{schema}"."{name}"').fetchall()
            tables[f"{schema}.{name}"] = sorted(rows, key=repr)
    return tables


def _write_export(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def _mutate_exports(landing: Path, url: str) -> dict:
    """A corrections export and an older export dropped late; returns what they changed."""
    folder = landing / "assessments"
    with db.connect(url) as conn:
        counted = [
            r[0]
            for r in conn.execute(
                "select assessment_id from marts.fct_assessment where is_counted"
                " order by assessment_id limit 3"
            )
        ]
    by_assessment: dict[str, list[list[str]]] = {}
    for source in sorted(folder.glob("*.csv")):  # the latest file's rows of each chosen assessment
        with source.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader)
            col = {name: i for i, name in enumerate(header)}
            found: dict[str, list[list[str]]] = {}
            for row in reader:
                if row[col["Quest.ID"]].strip() in counted:
                    found.setdefault(row[col["Quest.ID"]].strip(), []).append(row)
        by_assessment.update(found)
    corrected, rejected, late = counted

    def flipped(row: list[str]) -> list[str]:
        out = list(row)
        if out[col["Question.type"]] == "NCQ" and out[col["Finding"]] in ("0", "1"):
            out[col["Finding"]] = "1" if out[col["Finding"]] == "0" else "0"
        return out

    corrections = [flipped(r) for r in by_assessment[corrected] + by_assessment[rejected]]
    # a second assessment of the factory and cycle of `late`, starting a day later: it counts instead
    newer = []
    for row in by_assessment[late]:
        out = list(row)
        out[col["Quest.ID"]] = late + "-R"
        start = dt.datetime.strptime(out[col["Assesment.Start.Date"]].strip(), "%d/%m/%Y").date()
        out[col["Assesment.Start.Date"]] = (start + dt.timedelta(days=1)).strftime("%d/%m/%Y")
        newer.append(flipped(out))
    _write_export(folder / "bwpk_assessments_2099-01-15_corrections.csv", header, corrections + newer)
    # an export dated before every other one, loaded last: every row of it must lose
    old_rows = [flipped(r) for r in by_assessment[late]]
    _write_export(folder / "bwpk_assessments_2000-01-01_old.csv", header, old_rows)
    load.load_assessment_exports(url, landing, validate=False)
    with db.connect(url) as conn:
        batch = conn.execute(
            "select batch_id from audit.load_batches where source_object like '%2099-01-15_corrections%'"
        ).fetchone()[0]
        conn.execute(
            "insert into quarantine.rejected_rows"
            " (batch_id, source, source_row, raw_text, reason, assessment_id)"
            " values (%s, 'bwpk_assessments_2099-01-15_corrections.csv', 999, '...', 'invalid UTF-8', %s)",
            (batch, rejected),
        )
    return {"corrected": corrected, "rejected": rejected, "late": late, "newer": late + "-R"}


def _mutate_case_management(ops_url: str) -> None:
    """Updates and deletions in the source, each with a later updated_at."""
    with db.connect(ops_url) as conn:
        stamp = "now() + interval '1 minute'"
        conn.execute(
            f"update training_participants set attended = not attended, gender = 'F', updated_at = {stamp}"
            " where participant_id in (select participant_id from training_participants order by 1 limit 40)"
        )
        conn.execute(
            f"update training_participants set deleted_at = {stamp}, updated_at = {stamp}"
            " where participant_id in"
            " (select participant_id from training_participants order by 1 desc limit 25)"
        )
        conn.execute(
            f"update training_sessions set deleted_at = {stamp}, updated_at = {stamp}"
            " where session_id in (select session_id from training_sessions order by 1 limit 3)"
        )
        conn.execute(
            f"update training_sessions set starts_on = starts_on + 400, updated_at = {stamp}"
            " where session_id in (select session_id from training_sessions order by 1 desc limit 3)"
        )
        conn.execute(
            f"update advisory_visits set deleted_at = {stamp}, updated_at = {stamp}"
            " where visit_id in (select visit_id from advisory_visits order by 1 limit 10)"
        )
        conn.execute(
            f"update factories set workers_female = workers_female + 7, exited_on = date '2024-06-30',"
            f" updated_at = {stamp} where factory_id = (select min(factory_id) from factories)"
        )


def test_incremental_build_equals_full_refresh(warehouse_db, fresh_ops_database, tmp_path):
    url, ops_url, landing = warehouse_db, fresh_ops_database, tmp_path / "landing"
    demo.generate(landing, ops_url, scale=1)
    _load_everything(url, ops_url, landing)
    target = tmp_path / "target"
    transform.build(url, target_path=target)

    changed = _mutate_exports(landing, url)
    _mutate_case_management(ops_url)
    _load_everything(url, ops_url, landing)
    incremental = transform.build(url, target_path=target)
    compiled = {
        r["unique_id"].split(".")[-1]: r.get("compiled_code") or ""
        for r in json.loads((target / "run_results.json").read_text())["results"]
    }
    for model in INCREMENTAL_MODELS:  # the second build really was incremental
        assert "held" in compiled[model], model
    after_incremental = _snapshot(url)

    with db.connect(url) as conn:
        facts = dict(
            conn.execute(
                "select assessment_id, is_counted::text || '/' || is_complete::text from marts.fct_assessment"
                " where assessment_id = any(%s)",
                (list(changed.values()),),
            ).fetchall()
        )
    # the corrected one counts; the one with a rejected record is held out; the later one of the
    # same cycle replaces `late`, whose older export (loaded last) changed nothing
    assert facts == {
        changed["corrected"]: "true/true",
        changed["rejected"]: "false/false",
        changed["late"]: "false/true",
        changed["newer"]: "true/true",
    }

    transform.run_dbt(["build", "--full-refresh"], url, target_path=tmp_path / "full")
    after_full = _snapshot(url)
    assert sorted(after_incremental) == sorted(after_full)
    for table, rows in after_full.items():
        assert len(after_incremental[table]) == len(rows), table
        assert after_incremental[table] == rows, table
    assert len(after_full["marts.fct_finding"]) > 10_000
    assert incremental.ok
