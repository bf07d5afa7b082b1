"""Run DAGs once each, in order, in this process: what ``airflow dags test`` does, without paying
Airflow's start-up and the DAG folder's parse once per DAG.

    python -m include.run_dags extract_case_management extract_assessments transform

Called by ``bw run`` with Airflow's environment already set (include/airflow_env.py). Exits 1 if
any DAG run did not succeed; later DAGs still run, so that the marts reflect what did load.
"""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("bw.run_dags")


def run(dag_ids: list[str]) -> list[str]:
    """Run each DAG with ``dag.test()``; return the ids of those whose run failed."""
    from airflow.utils.cli import get_bagged_dag
    from airflow.utils.state import DagRunState

    failed = []
    for dag_id in dag_ids:
        started = time.monotonic()
        dag = get_bagged_dag(bundle_names=None, dag_id=dag_id)
        dag_run = dag.test()
        state = dag_run.state if dag_run else None
        log.info("DAG %s: %s in %.1f s", dag_id, state, time.monotonic() - started)
        if state != DagRunState.SUCCESS:
            failed.append(dag_id)
    return failed


def main(argv: list[str]) -> int:
    failed = run(argv)
    if failed:
        print(f"failed DAG runs: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
