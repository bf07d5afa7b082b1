"""End to end: ``bw run`` (what ``make run`` calls) on the scale-1 demo, twice, in throwaway
databases and folders. Real Airflow (``airflow dags test``), real GX, real dbt, real PostgreSQL.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from include import db
from include.contract import RAW_TABLES
from include.extract import surveys

ALL_RAW_TABLES = (*RAW_TABLES, *(surveys.raw_table(i).removeprefix("raw.") for i in surveys.INSTRUMENTS))
"""Every raw table a run loads: the contract's sources and the survey waves' (include/extract/surveys.py)."""


def _run_pipeline(env: dict[str, str]) -> subprocess.CompletedProcess:
    bw = Path(sys.executable).with_name("bw")
    return subprocess.run([str(bw), "run"], env=env, capture_output=True, text=True, timeout=900)


def _max_batch(url: str) -> int:
    with db.connect(url) as conn:
        return conn.execute("select coalesce(max(batch_id), 0) from audit.load_batches").fetchone()[0]


def _raw_counts(url: str) -> dict[str, int]:
    with db.connect(url) as conn:
        return {t: conn.execute(f"select count(*) from raw.{t}").fetchone()[0] for t in ALL_RAW_TABLES}


@pytest.fixture(scope="module")
def pipeline(demo_run):
    """The session's demo run (tests/conftest.py), then a second run on the same warehouse and
    folders; yields what they printed and left behind."""
    first = demo_run["proc"]
    url = demo_run["url"]
    counts_after_first = _raw_counts(url) if first.returncode == 0 else {}
    batches_after_first = _max_batch(url) if first.returncode == 0 else 0
    second = _run_pipeline(demo_run["env"]) if first.returncode == 0 else None
    return {
        "env": demo_run["env"],
        "url": url,
        "first": first,
        "second": second,
        "counts_after_first": counts_after_first,
        "batches_after_first": batches_after_first,
        "work": demo_run["work"],
    }


def test_first_run_succeeds_and_says_how_to_query(pipeline):
    first = pipeline["first"]
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-8000:]
    assert "Warehouse (configured)" in first.stdout
    assert "psql" in first.stdout and "marts.programme_kpis" in first.stdout


def test_marts_hold_rows(pipeline):
    with db.connect(pipeline["url"]) as conn:
        rates = conn.execute(
            "select count(*), count(*) filter (where panel = 'all') from marts.cp_noncompliance_rate"
        ).fetchone()
        findings = conn.execute("select count(*) from marts.fct_finding").fetchone()[0]
    assert rates[1] > 0 and rates[0] >= rates[1]
    assert findings > 0


def test_programme_kpis_match_the_scale_one_programme(pipeline):
    with db.connect(pipeline["url"]) as conn:
        row = conn.execute(
            "select factories_engaged, assessments, advisory_visits, training_sessions, "
            "training_participants from marts.programme_kpis where period = 'all'"
        ).fetchone()
    factories, assessments, visits, sessions, participants = row
    assert (factories, assessments, visits, sessions) == (121, 184, 1200, 500)
    assert participants >= 6000


def test_second_run_succeeds_and_loads_nothing_twice(pipeline):
    second = pipeline["second"]
    assert second is not None and second.returncode == 0, second.stdout[-4000:] + second.stderr[-8000:]
    assert _raw_counts(pipeline["url"]) == pipeline["counts_after_first"]
    with db.connect(pipeline["url"]) as conn:
        duplicated = conn.execute(
            "select count(*) from (select checksum from audit.load_batches where status = 'loaded' "
            "and checksum is not null group by source, checksum having count(*) > 1) d"
        ).fetchone()[0]
    assert duplicated == 0


def test_every_input_row_is_accounted_for(pipeline):
    with db.connect(pipeline["url"]) as conn:
        unbalanced = conn.execute(
            "select count(*) from audit.load_batches "
            "where status = 'loaded' and rows_read <> rows_loaded + rows_quarantined"
        ).fetchone()[0]
        loaded = conn.execute(
            "select coalesce(sum(rows_loaded), 0) from audit.load_batches where status = 'loaded'"
        ).fetchone()[0]
    assert unbalanced == 0
    assert loaded == sum(pipeline["counts_after_first"].values())


# --------------------------------------------------------------------------- the console (issue 16)

SOURCE_LINE = re.compile(
    r"^  (assessment exports|case management|survey waves):\s+(\d+) batch(?:es)?, "
    r"([\d,]+) rows loaded, ([\d,]+) quarantined"
)


def test_console_is_short_and_says_where_the_log_is(pipeline):
    first = pipeline["first"]
    lines = first.stdout.splitlines()
    assert len(lines) <= 40, first.stdout
    log_line = next(line for line in lines if line.startswith("Full log:"))
    log_path = Path(log_line.split(":", 1)[1].strip())
    log_path = log_path if log_path.is_absolute() else Path.cwd() / log_path
    assert log_path.exists()
    text = log_path.read_text(errors="replace")
    assert "[DAG TEST]" in text  # Airflow's own logging went to the file, not the screen
    assert "[DAG TEST]" not in first.stdout
    for dag_task in (
        "extract_assessments.load_exports",
        "transform.dbt_build",
        "research_release.publish_release",
    ):
        assert any(line.startswith(dag_task) and " ok " in line for line in lines), dag_task
    assert "bw run finished" in lines[-1]


def test_console_summary_matches_the_audit_table(pipeline):
    """The summary's per-source figures are those of audit.load_batches for the run's batches."""
    shown = {}
    for line in pipeline["first"].stdout.splitlines():
        m = SOURCE_LINE.match(line)
        if m:
            name, batches, loaded, quarantined = m.groups()
            key = {
                "assessment exports": "assessment_exports",
                "case management": "case_management",
                "survey waves": "survey_files",
            }[name]
            shown[key] = (int(batches), int(loaded.replace(",", "")), int(quarantined.replace(",", "")))
    with db.connect(pipeline["url"]) as conn:
        audit = {
            source: (int(n), int(loaded), int(quarantined))
            for source, n, loaded, quarantined in conn.execute(
                "select source, count(*), sum(rows_loaded), sum(rows_quarantined) from audit.load_batches "
                "where batch_id <= %s group by source",
                (pipeline["batches_after_first"],),
            )
        }
    assert shown == audit
    dbt_line = next(line for line in pipeline["first"].stdout.splitlines() if line.startswith("  dbt"))
    with db.connect(pipeline["url"]) as conn:
        counts = conn.execute(
            "select summary->'counts' from audit.transform_runs "
            "where status = 'success' order by run_id limit 1"
        ).fetchone()[0]
    assert f"{counts['model']['success']} models" in dbt_line
    assert f"{counts['test'].get('pass', 0) + counts['unit_test'].get('pass', 0)} tests passed" in dbt_line


def test_second_run_says_nothing_changed_and_skips_transform_and_release(pipeline):
    second = pipeline["second"]
    assert second is not None and second.returncode == 0
    assert "nothing changed" in second.stdout
    lines = second.stdout.splitlines()
    assert any(line.startswith("transform ") and "skipped" in line for line in lines)
    assert any(line.startswith("research_release ") and "skipped" in line for line in lines)
    assert not any(line.startswith("transform.dbt_build") for line in lines)
    with db.connect(pipeline["url"]) as conn:
        runs = conn.execute("select count(*) from audit.transform_runs").fetchone()[0]
    assert runs == 1
