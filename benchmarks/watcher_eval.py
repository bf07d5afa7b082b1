"""Cosmos ``ExecutionMode.WATCHER`` against the single ``dbt build`` task, under the real scheduler.

    .venv/bin/python -m benchmarks.watcher_eval [--rounds 2]

Builds a throwaway warehouse holding the scale-1 demo (loaded in this process), starts the
LocalExecutor stack of ``make airflow`` (include/orchestration/airflow_server.py) with a DAG folder of two
manual DAGs that differ only in the transform's mode (``transform.cosmos_dbt(mode=...)``), runs
them alternately and prints each run's wall time (from the API's start and end dates) and task
count. Everything it creates is dropped at the end. Figures: docs/TRANSFORM.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from unittest import mock

from include import db, warehouse
from include.config import settings
from include.orchestration import airflow_env, airflow_server

DAGS = '''"""Two airflow DAGs for benchmarks/watcher_eval.py: the transform in each Cosmos mode."""
from datetime import datetime

from airflow.sdk import dag

from include.transform import dbt as transform


@dag(dag_id="eval_build", schedule=None, start_date=datetime(2025, 1, 1), catchup=False)
def eval_build():
    transform.cosmos_dbt("dbt_build", mode="build")


@dag(dag_id="eval_watcher", schedule=None, start_date=datetime(2025, 1, 1), catchup=False)
def eval_watcher():
    transform.cosmos_dbt("dbt_build", mode="watcher")


eval_build()
eval_watcher()
'''


def _seconds(run: dict) -> float:
    start = datetime.fromisoformat(run["start_date"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(run["end_date"].replace("Z", "+00:00"))
    return (end - start).total_seconds()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)

    from include import demo, load
    from include.contract import CASE_MANAGEMENT_TABLES

    server = db.with_database(warehouse.resolve(create_database=False).url, "postgres")
    suffix = uuid.uuid4().hex[:8]
    wh, ops, meta = (db.with_database(server, f"bwtest_watch_{n}_{suffix}") for n in ("wh", "ops", "meta"))
    work = Path(tempfile.mkdtemp(prefix="bw-watcher-eval-"))
    (work / "dags").mkdir()
    (work / "dags" / "eval_transform.py").write_text(DAGS)
    values = {
        "PSEUDONYM_KEY": "watcher-eval-key-0123456789abcdef0123456789",
        "AIRFLOW_HOME": str(work / "airflow"),
        "AIRFLOW_DATABASE_URL": meta,
        "LANDING_DIR": str(work / "landing"),
        "DOCS_DIR": str(work / "docs"),
        "EXECUTOR": "local",
        "AIRFLOW__API__PORT": str(airflow_server.free_port()),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(airflow_server.free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(airflow_server.free_port()),
    }
    stack = None
    try:
        for url in (wh, ops, meta):
            db.ensure_database(url)
        with mock.patch.dict(os.environ, values):
            cfg = settings()
            warehouse.bootstrap(wh, cfg)
            demo.generate(cfg.landing_dir, ops, scale=1, seed=2025, only_if_empty=False)
            for table in CASE_MANAGEMENT_TABLES:
                load.load_case_management_table(wh, ops, table)
            load.load_assessment_exports(wh, cfg.landing_dir)
            env = airflow_env.server_environment(cfg, wh, ops)
        env["AIRFLOW__CORE__DAGS_FOLDER"] = str(work / "dags")
        airflow_server.migrate(env)
        stack = airflow_server.Stack(env)
        started = time.monotonic()
        stack.start()
        print(f"stack healthy in {stack.wait_healthy(timeout=300):.1f} s", flush=True)
        client = stack.client()
        for dag_id in ("eval_build", "eval_watcher"):
            deadline = time.monotonic() + 300
            while True:
                try:
                    client.get(f"/dags/{dag_id}")
                    break
                except RuntimeError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(2)
            client.unpause(dag_id)
        print(f"DAGs parsed {time.monotonic() - started:.1f} s after start", flush=True)
        figures: dict[str, list[float]] = {"eval_build": [], "eval_watcher": []}
        for round_ in range(args.rounds):
            for dag_id in figures:
                run_id = client.trigger(dag_id)["dag_run_id"]
                while (run := client.get(f"/dags/{dag_id}/dagRuns/{run_id}"))["state"] not in (
                    "success",
                    "failed",
                ):
                    time.sleep(2)
                tis = client.task_instances(dag_id, run_id)
                states = {}
                for ti in tis:
                    states[ti["state"]] = states.get(ti["state"], 0) + 1
                figures[dag_id].append(_seconds(run))
                print(
                    f"round {round_ + 1} {dag_id}: {run['state']} in {_seconds(run):.1f} s, "
                    f"{len(tis)} tasks {states}",
                    flush=True,
                )
        for dag_id, values_ in figures.items():
            print(f"{dag_id}: median {statistics.median(values_):.1f} s over {len(values_)} runs {values_}")
    finally:
        if stack:
            stack.stop()
        for url in (wh, ops, meta):
            db.drop_database(url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
