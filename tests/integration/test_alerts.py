"""Alerts end to end: real DAG runs (``dag.test()``, real GX, real dbt, real PostgreSQL) with the
alert channels pointed at a local SMTP sink (aiosmtpd) and a local HTTP receiver, both started
here on 127.0.0.1. A planted quarantined file and a planted failing dbt test each send one e-mail
and one webhook message that say what, which file/table/rule, how many rows, and where to look;
a clean run sends nothing."""

from __future__ import annotations

import email
import email.policy
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from unittest import mock

import pytest

from include import db
from include.config import settings
from include.orchestration import airflow_env, airflow_server, alerts
from tests.integration.test_load_exports import export_rows, write_export

# Minutes of real Airflow per test: run by `make test-system`, not by `make test` (docs/TESTING.md).
pytestmark = pytest.mark.system

RUN_DAG = """
import sys
from airflow.utils.cli import get_bagged_dag

dag = get_bagged_dag(bundle_names=None, dag_id=sys.argv[1])
for task in dag.tasks:
    task.retries = 0  # a planted failure fails at once (retries are not what is tested here)
run = dag.test()
print("DAG RUN STATE:", run.state)
"""


class Receivers:
    """An SMTP sink and an HTTP receiver on free loopback ports, collecting what arrives."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.emails: list[str] = []
        self.posts: list[dict] = []
        outer = self

        class Sink:
            async def handle_DATA(self, server, session, envelope):
                msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
                subject = " ".join(str(msg["Subject"]).split())  # unfolded
                outer.emails.append(f"Subject: {subject}\n\n{msg.get_content()}")
                return "250 OK"

        class Hook(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.posts.append(json.loads(body))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.smtp_port = airflow_server.free_port()
        self.smtp = Controller(Sink(), hostname="127.0.0.1", port=self.smtp_port)
        self.smtp.start()
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    @property
    def env(self) -> dict[str, str]:
        return {
            "ALERT_SMTP_URL": f"smtp://127.0.0.1:{self.smtp_port}",
            "ALERT_EMAIL_TO": "data-team@example.org",
            "ALERT_WEBHOOK_URL": f"http://127.0.0.1:{self.http.server_address[1]}/hook",
        }

    def clear(self):
        self.emails.clear()
        self.posts.clear()

    def stop(self):
        self.smtp.stop()
        self.http.shutdown()


@pytest.fixture(scope="module")
def receivers():
    r = Receivers()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory):
    """One migrated (SQLite) Airflow home for the module's ``dag.test()`` runs."""
    home = tmp_path_factory.mktemp("alerts-airflow")
    env = {**os.environ, "AIRFLOW_HOME": str(home)}
    subprocess.run(
        [str(Path(sys.executable).with_name("airflow")), "db", "migrate"],
        env=env,
        check=True,
        capture_output=True,
    )
    return home


@pytest.fixture
def run_dag(warehouse_db, fresh_ops_database, receivers, airflow_home, tmp_path):
    """Run one DAG with alerts on; return (state line, output)."""
    receivers.clear()

    def run(dag_id: str) -> str:
        values = {
            **receivers.env,
            "AIRFLOW_HOME": str(airflow_home),
            "LANDING_DIR": str(tmp_path / "landing"),
            "DOCS_DIR": str(tmp_path / "docs"),
            "RELEASE_DIR": str(tmp_path / "releases"),
            "AIRFLOW_URL": "http://airflow.example.org",
        }
        with mock.patch.dict(os.environ, values):
            env = airflow_env.environment(settings(), warehouse_db, fresh_ops_database)
        proc = subprocess.run(
            [sys.executable, "-c", RUN_DAG, dag_id], env=env, capture_output=True, text=True, timeout=600
        )
        return proc.stdout + proc.stderr

    return run


def _registry(url: str, factory_ids) -> None:
    """Factories in raw.cm_factories, so exports naming them raise no registry warning."""
    with db.connect(url) as conn:
        for fid in factory_ids:
            conn.execute(
                "insert into raw.cm_factories (factory_id, name, _batch_id, _source, _source_row) "
                "values (%s, %s, 0, 'test', %s)",
                (fid, f"Factory {fid}", fid),
            )
        conn.commit()


def test_a_quarantined_file_alerts_by_email_and_webhook(run_dag, warehouse_db, receivers, tmp_path):
    _registry(warehouse_db, range(100, 150))
    rows = list(export_rows(4))
    rows[3][6] = "XYZ"  # Question.type: a critical expectation fails, the batch is quarantined
    write_export(tmp_path / "landing" / "assessments" / "bad_batch.csv", rows)
    write_export(tmp_path / "landing" / "assessments" / "good.csv", export_rows(2, first_quest=100))
    output = run_dag("extract_assessments")
    assert "DAG RUN STATE: failed" in output, output[-5000:]

    assert len(receivers.emails) == 1 and len(receivers.posts) == 1, (receivers.emails, receivers.posts)
    mail, text = receivers.emails[0], receivers.posts[0]["text"]
    assert "Subject: [Better Work data] extract_assessments.load_exports FAILED" in mail
    for body in (mail, text):
        assert "bad_batch.csv" in body  # which file
        assert "batch quarantined" in body  # what
        assert "Question.type allowed values" in body  # which rule
        assert "12 rows" in body  # how many rows (12 data rows in the batch)
        assert "quarantine.rejected_rows where batch_id" in body  # where to look
        assert "http://airflow.example.org/dags/extract_assessments/runs/" in body
        assert "good.csv" not in body  # the good file loaded: nothing to say about it


def test_a_failing_dbt_test_alerts_by_email_and_webhook(run_dag, warehouse_db, receivers):
    with db.connect(warehouse_db) as conn:  # raw.cm_factories.factory_id has a not_null test
        conn.execute(
            "insert into raw.cm_factories (factory_id, name, _batch_id, _source, _source_row) "
            "values (null, 'nameless', 0, 'planted', 1)"
        )
        conn.commit()
    output = run_dag("transform")
    assert "DAG RUN STATE: failed" in output, output[-5000:]

    assert len(receivers.emails) == 1 and len(receivers.posts) == 1, (receivers.emails, receivers.posts)
    mail, text = receivers.emails[0], receivers.posts[0]["text"]
    assert "Subject: [Better Work data] transform.dbt_build FAILED" in mail
    for body in (mail, text):
        assert "dbt test failed" in body
        assert "source_not_null_raw_cm_factories_factory_id" in body  # which table and rule
        assert "; 1 row" in body  # how many rows
        assert "run_results.json" in body  # where to look


def test_a_clean_run_sends_nothing(run_dag, warehouse_db, receivers, tmp_path):
    _registry(warehouse_db, range(100, 150))
    write_export(tmp_path / "landing" / "assessments" / "good.csv", export_rows(3, first_quest=100))
    output = run_dag("extract_assessments")
    assert "DAG RUN STATE: success" in output, output[-5000:]
    with db.connect(warehouse_db) as conn:
        assert conn.execute("select status, rows_loaded from audit.load_batches").fetchall() == [
            ("loaded", 9)
        ]
    assert receivers.emails == [] and receivers.posts == []


def test_a_dbt_warning_alerts_without_failing(receivers, tmp_path):
    """The success callback's path for dbt warnings, from a run_results.json as dbt writes it."""
    results = {
        "results": [
            {"unique_id": "model.betterwork.fct_finding", "status": "success", "failures": None},
            {
                "unique_id": "test.betterwork.assert_few_unknown_factories",
                "status": "warn",
                "failures": 7,
                "message": "Got 7 results, configured to warn if != 0",
            },
        ]
    }
    findings = alerts.dbt_findings(results, tmp_path / "run_results.json")
    assert [(f.severity, f.rows) for f in findings] == [("warning", 7)]
    subject, text = alerts.compose("transform.dbt_build succeeded with data-quality warnings", findings, [])
    with mock.patch.dict(os.environ, receivers.env):
        receivers.clear()
        assert alerts.send(subject, text) == ["email", "webhook"]
    assert "assert_few_unknown_factories; 7 rows" in receivers.posts[0]["text"]
    assert "1 warning(s)" in receivers.emails[0]
