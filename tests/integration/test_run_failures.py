"""``bw run`` (what ``make run`` calls) when something fails: it finishes what it can, names the
failure in its last lines, exits non-zero, does not retry a failure that cannot heal, and
publishes nothing downstream of a failed transform (issue 14).

One pair of throwaway databases, two runs:

1. the demo with a planted failing dbt test (a singular test in a temporary copy of the dbt
   project, ``DBT_PROJECT_DIR``): the transform fails at once, no release, no ``marts`` Asset event;
2. the same warehouse, the real dbt project, and a bad export file (an XLSX workbook saved under a
   ``.csv`` name): the extraction names the file and fails, the transform (owed since run 1) runs.

The warehouse URL carries a password (the local server's trust authentication ignores it): it must
never be printed.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from include import db
from include.config import PROJECT_DIR

PASSWORD = "never-print-this-7f3a"
PLANTED_TEST = "planted_failure_for_bw_run"


def _bw_run(env: dict[str, str]) -> subprocess.CompletedProcess:
    bw = Path(sys.executable).with_name("bw")
    return subprocess.run([str(bw), "run"], env=env, capture_output=True, text=True, timeout=1200)


def _copy_dbt_project(dest: Path) -> Path:
    shutil.copytree(
        PROJECT_DIR / "dbt_project",
        dest,
        ignore=shutil.ignore_patterns("target", "logs", "dbt_packages", ".user.yml"),
    )
    (dest / "tests" / f"{PLANTED_TEST}.sql").write_text(
        "-- planted by tests/integration/test_run_failures.py: one row = one failure\nselect 1 as planted\n"
    )
    return dest


def _write_xlsx_as_csv(path: Path) -> None:
    from openpyxl import Workbook

    book = Workbook()
    book.active.append(["Quest.ID", "Factory.ID"])
    book.active.append(["1", "2"])
    book.save(path)


def _tries(airflow_home: Path, dag_id: str, task_id: str) -> list[tuple[str, int]]:
    with sqlite3.connect(airflow_home / "airflow.db") as conn:
        return conn.execute(
            "select state, try_number from task_instance where dag_id = ? and task_id = ?", (dag_id, task_id)
        ).fetchall()


def _marts_asset_events(airflow_home: Path) -> int:
    with sqlite3.connect(airflow_home / "airflow.db") as conn:
        return conn.execute(
            "select count(*) from asset_event e join asset a on a.id = e.asset_id where a.name = 'marts'"
        ).fetchone()[0]


def _releases(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) if root.is_dir() else []


@pytest.fixture(scope="module")
def runs(tmp_path_factory, pg_server_url):
    suffix = uuid.uuid4().hex[:8]
    server = {**db.parts(pg_server_url), "password": PASSWORD}
    warehouse_url = db.with_database(db.to_url(server), f"bwtest_fail_wh_{suffix}")
    ops_url = db.with_database(db.to_url(server), f"bwtest_fail_ops_{suffix}")
    work = tmp_path_factory.mktemp("failures")
    env = {
        **os.environ,
        "WAREHOUSE_URL": warehouse_url,
        "OPS_DATABASE_URL": ops_url,
        "LANDING_DIR": str(work / "landing"),
        "AIRFLOW_HOME": str(work / "airflow"),
        "RELEASE_DIR": str(work / "releases"),
        "DOCS_DIR": str(work / "docs"),
        "SITE_DIR": str(work / "site"),
        "LOG_DIR": str(work / "logs"),
        "PSEUDONYM_KEY": "failure-test-key",
        "DEMO": "1",
        "SCALE": "1",
    }
    try:
        broken = _copy_dbt_project(work / "dbt_project_with_a_failing_test")
        first = _bw_run({**env, "DBT_PROJECT_DIR": str(broken)})
        after_first = {
            "releases": _releases(work / "releases"),
            "dbt_build": _tries(work / "airflow", "transform", "dbt_build"),
            "marts_events": _marts_asset_events(work / "airflow"),
            "site": (work / "site" / "index.html").exists(),
        }
        bad_file = work / "landing" / "assessments" / "bwpk_assessments_2026-01-05_workbook.csv"
        _write_xlsx_as_csv(bad_file)
        second = _bw_run(env)
        yield {
            "first": first,
            "second": second,
            "after_first": after_first,
            "work": work,
            "url": warehouse_url,
            "bad_file": bad_file.name,
        }
    finally:
        db.drop_database(warehouse_url)
        db.drop_database(ops_url)


def _tail(proc: subprocess.CompletedProcess, n: int = 8) -> str:
    return "\n".join(proc.stdout.splitlines()[-n:])


def test_failing_dbt_test_fails_the_run_and_is_named_last(runs):
    first = runs["first"]
    assert first.returncode != 0, first.stdout[-3000:]
    tail = _tail(first)
    assert "FAILED" in tail and "transform.dbt_build" in tail and PLANTED_TEST in tail, first.stdout


def test_failing_dbt_test_is_not_retried(runs):
    assert runs["after_first"]["dbt_build"] == [("failed", 1)]


def test_failed_transform_publishes_nothing(runs):
    after = runs["after_first"]
    assert after["releases"] == []
    assert after["marts_events"] == 0
    assert not after["site"]
    lines = runs["first"].stdout.splitlines()
    assert any(line.startswith("research_release ") and "skipped" in line for line in lines)
    assert not any(line.startswith("transform.marts_built") and " ok " in line for line in lines)
    with db.connect(runs["url"]) as conn:
        status = conn.execute("select status from audit.transform_runs order by run_id limit 1").fetchone()[0]
    assert status == "failed"


def test_the_extractions_still_ran_beside_the_failed_transform(runs):
    with db.connect(runs["url"]) as conn:
        loaded = conn.execute(
            "select count(*) from audit.load_batches where status = 'loaded' and rows_loaded > 0"
        ).fetchone()[0]
    assert loaded >= 10


def test_bad_export_file_fails_the_run_and_is_named_last(runs):
    second = runs["second"]
    assert second.returncode != 0, second.stdout[-3000:]
    tail = _tail(second, 12)
    assert "FAILED" in second.stdout.splitlines()[-1]
    assert "extract_assessments.load_exports" in tail, second.stdout
    assert runs["bad_file"] in second.stdout, second.stdout


def test_transform_owed_by_the_failed_run_runs_after_the_fix(runs):
    """Run 2 loaded nothing new, but no transform had succeeded: it builds, then releases."""
    lines = runs["second"].stdout.splitlines()
    assert any(line.startswith("transform.dbt_build") and " ok " in line for line in lines), runs[
        "second"
    ].stdout
    assert len(_releases(runs["work"] / "releases")) == 1


def test_no_password_printed(runs):
    for proc in (runs["first"], runs["second"]):
        assert PASSWORD not in proc.stdout and PASSWORD not in proc.stderr
