"""Every DAG imports cleanly and follows the project's conventions (the Astronomer template's checks).

DAG files are parsed constantly by the DAG processor: they must be cheap to import, so heavy
libraries (pandas, Great Expectations, dbt) are imported inside tasks only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
DAG_FILES = sorted(p for p in DAGS_DIR.glob("*.py") if not p.name.startswith("_"))
HEAVY = ("pandas", "great_expectations", "dbt")
EXPECTED_DAGS = {
    "extract_case_management",
    "extract_assessments",
    "extract_surveys",
    "transform",
    "research_release",
}


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}, "\n".join(f"{k}: {v}" for k, v in dagbag.import_errors.items())


def test_the_pipeline_dags_exist(dagbag):
    assert EXPECTED_DAGS <= set(dagbag.dag_ids)


def test_every_dag_has_owner_tags_retries_and_docs(dagbag):
    problems = []
    for dag_id, dag in dagbag.dags.items():
        if not dag.tags:
            problems.append(f"{dag_id}: no tags")
        if not dag.doc_md:
            problems.append(f"{dag_id}: no doc_md")
        for task in dag.tasks:
            if task.owner in (None, "", "airflow"):
                problems.append(f"{dag_id}.{task.task_id}: owner {task.owner!r}")
            if (task.retries or 0) < 2:
                problems.append(f"{dag_id}.{task.task_id}: retries {task.retries}")
    assert not problems, "\n".join(problems)


def test_dags_have_tasks_and_no_cycles(dagbag):
    for dag in dagbag.dags.values():
        assert dag.task_dict, f"{dag.dag_id} has no tasks"
        dag.check_cycle()  # raises AirflowDagCycleException


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_does_not_import_heavy_libraries(dag_file: Path):
    """Import the DAG file alone in a fresh interpreter and list which heavy modules got loaded."""
    code = (
        "import importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('dag_under_test', {str(dag_file)!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(HEAVY)!r}))))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(DAGS_DIR.parent)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == [], f"{dag_file.name} imports {loaded} at parse time; import them inside tasks"
