"""The console's pure parts: task lines, counts, dbt summaries, what counts as transient."""

from __future__ import annotations

import io

from include.orchestration import console
from include.transform import dbt as transform


def test_task_line_has_name_status_seconds_and_note():
    line = console.task_line(
        "extract_assessments.load_exports", "success", 2.04, "9 batches, 45,907 rows loaded"
    )
    assert line.startswith("extract_assessments.load_exports ")
    assert " ok " in line and "2.0 s" in line and line.endswith("9 batches, 45,907 rows loaded")
    assert " FAILED " in console.task_line("transform.dbt_build", "failed", 1.0)


def test_batches_text_counts_every_status():
    text = console.batches_text({"loaded": (2, 1200, 3), "rejected": (1, 0, 0)})
    assert text == "3 batches, 1,200 rows loaded, 3 quarantined, 1 batch rejected"


def test_summarise_results_from_run_results_json():
    results = [
        {"unique_id": "model.betterwork.fct_finding", "status": "success", "message": "SELECT 10"},
        {"unique_id": "test.betterwork.not_null_x.abc", "status": "fail", "message": "Got 3 results"},
        {"unique_id": "test.betterwork.accepted_values_y.def", "status": "warn", "message": "Got 1 result"},
        {"unique_id": "unit_test.betterwork.fct_finding.latest_wins", "status": "pass", "message": None},
    ]
    summary = transform.summarise_results(results)
    assert summary["counts"] == {
        "model": {"success": 1},
        "test": {"fail": 1, "warn": 1},
        "unit_test": {"pass": 1},
    }
    assert summary["failures"] == [
        {"node": "not_null_x", "kind": "test", "status": "fail", "message": "Got 3 results"}
    ]
    assert [w["node"] for w in summary["warnings"]] == ["accepted_values_y"]
    assert console.dbt_counts_text(summary) == "1 models, 1 tests passed, 1 warned, 1 failed"


def test_transient_errors_are_told_apart_from_failing_tests():
    assert transform.is_transient('connection to server at "127.0.0.1", port 5432 failed: Connection refused')
    assert transform.is_transient("FATAL: sorry, too many clients already")
    assert not transform.is_transient("Got 3 results, configured to fail if != 0")
    assert not transform.is_transient('column "factory_idd" does not exist')


def test_failures_name_the_task_and_the_error():
    events = [
        {
            "event": "task_finished",
            "dag_id": "transform",
            "task_id": "dbt_build",
            "state": "failed",
            "error": "x\ny",
        },
        {"event": "task_finished", "dag_id": "transform", "task_id": "dbt_docs", "state": "success"},
    ]
    assert console.failures_from(events, 1) == ["transform.dbt_build: x y"]
    assert console.failures_from([], 1) == ["the DAG runner exited with 1"]


def test_progress_on_a_pipe_is_one_line_a_minute_at_most(monkeypatch):
    monkeypatch.setattr(console, "NON_TTY_EVERY", 0.3)
    out = io.StringIO()
    screen = console.Console(out, tty=False)
    screen.start()
    screen.busy("transform.dbt_build")
    import time

    time.sleep(1.0)
    screen.busy(None)
    screen.stop()
    lines = out.getvalue().splitlines()
    assert 1 <= len(lines) <= 4
    assert all("still running" in line and "\r" not in line for line in lines)


def test_redacted_url_and_psql_url_carry_no_password():
    url = "postgresql://bw:s3cret@db.example:5432/betterwork"
    assert "s3cret" not in console.redact(url) and "db.example:5432/betterwork" in console.redact(url)
    assert console.without_password(url) == "postgresql://bw@db.example:5432/betterwork"
