"""An extraction that loaded rows emits its Asset events; one with nothing new emits none (issue 13).

The extraction DAGs run under ``dag.test()`` (as ``make run`` runs them), in a child process with
its own Airflow home and metadata database; the events are read back from Airflow's database.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

from include import db
from include.config import PROJECT_DIR, settings
from include.orchestration import airflow_env
from tests.integration.test_load_case_management import MINIMAL_SCHEMA, add_factory

SCRIPT = r"""
import json, sys
from airflow.models.asset import AssetEvent, AssetModel
from airflow.utils.cli import get_bagged_dag
from airflow.utils.session import create_session

out = []
for dag_id in sys.argv[1:]:
    dag_run = get_bagged_dag(bundle_names=None, dag_id=dag_id).test()
    with create_session() as session:
        names = session.query(AssetModel.name).join(AssetEvent, AssetEvent.asset_id == AssetModel.id).filter(
            AssetEvent.source_dag_id == dag_id, AssetEvent.source_run_id == dag_run.run_id
        ).all()
    out.append({"dag": dag_id, "state": str(dag_run.state), "events": sorted(n for (n,) in names)})
print("EVENTS=" + json.dumps(out))
"""


def _run_dags(env: dict[str, str], *dag_ids: str) -> list[dict]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, *dag_ids],
        env=env,
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("EVENTS=")]
    assert lines, done.stdout[-3000:] + done.stderr[-5000:]
    return json.loads(lines[-1].removeprefix("EVENTS="))


def test_events_only_when_rows_were_loaded(warehouse_db, fresh_ops_database, tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    monkeypatch.setenv("LANDING_DIR", str(tmp_path / "landing"))
    monkeypatch.setenv("DOCS_DIR", str(tmp_path / "docs"))
    (tmp_path / "landing" / "assessments").mkdir(parents=True)
    with db.connect(fresh_ops_database) as conn:
        conn.execute(MINIMAL_SCHEMA.read_text())
    add_factory(fresh_ops_database, 1, dt.datetime(2025, 3, 1, tzinfo=dt.UTC))
    env = airflow_env.environment(settings(), warehouse_db, fresh_ops_database)
    assert (
        subprocess.run(
            [str(PROJECT_DIR / ".venv" / "bin" / "airflow"), "db", "migrate"], env=env, capture_output=True
        ).returncode
        == 0
    )

    first, nothing_new = _run_dags(env, "extract_case_management", "extract_case_management")
    assert first["state"] == nothing_new["state"] == "success", (first, nothing_new)
    assert first["events"] == ["raw.cm_factories"]  # only the table that loaded rows
    assert nothing_new["events"] == []

    (no_file,) = _run_dags(env, "extract_assessments")
    assert no_file == {"dag": "extract_assessments", "state": "success", "events": []}
    sample = PROJECT_DIR / "tests" / "fixtures" / "exports" / "sample_export.csv"
    (tmp_path / "landing" / "assessments" / "sample_export.csv").write_bytes(sample.read_bytes())
    one_file, again = _run_dags(env, "extract_assessments", "extract_assessments")
    assert one_file["events"] == ["raw.assessment_export_rows"], one_file
    assert again["events"] == [], again

    # the survey waves' extraction (one child process: a run with the file, then one with nothing new)
    (tmp_path / "landing" / "surveys").mkdir()
    survey = PROJECT_DIR / "tests" / "fixtures" / "handmade" / "surveys" / "worker_wave2_2024-06-10.csv"
    (tmp_path / "landing" / "surveys" / survey.name).write_bytes(survey.read_bytes())
    one_survey, survey_again = _run_dags(env, "extract_surveys", "extract_surveys")
    assert one_survey["events"] == ["raw.survey_worker_rows"], one_survey  # only the table with rows
    assert survey_again["state"] == "success" and survey_again["events"] == [], survey_again
