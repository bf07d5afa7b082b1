"""Run DAGs once each, in order, in this process: what ``airflow dags test`` does, without paying
Airflow's start-up and the DAG folder's parse once per DAG.

    python -m include.orchestration.run_dags --pipeline [--full-refresh]     what `bw run` runs
    python -m include.orchestration.run_dags extract_case_management transform  these DAGs, in this order

Called by ``bw run`` with Airflow's environment already set (include/orchestration/airflow_env.py). Exits 1 if
any DAG run did not succeed.

The pipeline (``--pipeline``):

1. the extraction DAGs (case management, assessment exports, survey waves), whatever happens to any;
2. ``transform`` only if something changed since the last successful transform
   (:func:`include.transform.dbt.needs_transform`: a batch loaded rows, the dbt project changed, or
   ``--full-refresh``), otherwise it says that nothing changed;
3. ``research_release`` and then ``publish_site`` only if that transform succeeded: a failed
   transform publishes nothing, and the previous release and site stay the current ones.

A task that fails deterministically raises ``AirflowFailException`` and is not retried. Any other
failure is retried after :data:`RETRY_DELAY` here, not the team server's 2 minutes: a one-shot run
ends promptly. As each task finishes, one JSON line describing it is written to the file
descriptor in ``BW_EVENTS_FD`` (``bw run`` turns them into its console, include/orchestration/console.py);
Airflow's own logging goes to stdout/stderr, which ``bw run`` sends to the run's log file.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from datetime import timedelta

log = logging.getLogger("bw.run_dags")

EXTRACT_DAGS = ("extract_case_management", "extract_assessments", "extract_surveys")
TRANSFORM_DAG = "transform"
RELEASE_DAG = "research_release"
SITE_DAG = "publish_site"
PUBLISH_DAGS = (RELEASE_DAG, SITE_DAG)
PIPELINE = (*EXTRACT_DAGS, TRANSFORM_DAG, *PUBLISH_DAGS)
"""The DAGs of ``bw run``, in dependency order: the registry before the exports and the survey
waves (GX checks their factories against it), every raw source before the transform, the marts
before a release."""

RETRY_DELAY = timedelta(seconds=5)
"""Delay before a retry under ``bw run`` (transient faults only; bad input is not retried)."""

EVENTS_FD_ENV = "BW_EVENTS_FD"


class Events:
    """JSON lines to ``bw run`` (a pipe), or to this process's log when run by hand."""

    def __init__(self) -> None:
        fd = os.environ.get(EVENTS_FD_ENV)
        self._out = os.fdopen(int(fd), "w", buffering=1) if fd else None

    def emit(self, **event) -> None:
        event.setdefault("at", time.time())
        if self._out is not None:
            try:
                self._out.write(json.dumps(event, default=str) + "\n")
                return
            except OSError:  # bw run went away: keep running, log instead
                self._out = None
        log.info("event: %s", event)


class TaskListener:
    """Airflow listener: a line per task as it finishes, with what it did (``console``)."""

    def __init__(self, events: Events, warehouse_url: str | None) -> None:
        from include.orchestration import console

        self.events = events
        self.probe = console.TaskProbe(warehouse_url)
        self.started: dict[tuple[str, str], tuple[float, object]] = {}
        self.seen: set[tuple[str, str, str]] = set()

    def _key(self, ti) -> tuple[str, str]:
        return ti.dag_id, ti.task_id

    def on_task_instance_running(self, previous_state, task_instance):
        key = self._key(task_instance)
        self.started[key] = (time.monotonic(), self.probe.before(*key))
        self.events.emit(event="task_started", dag_id=key[0], task_id=key[1])

    def on_task_instance_success(self, previous_state, task_instance):
        self._finished(task_instance, "success", None)

    def on_task_instance_failed(self, previous_state, task_instance, error):
        state = str(getattr(task_instance, "state", "") or "failed").rsplit(".", 1)[-1].lower()
        self._finished(task_instance, "up_for_retry" if "retry" in state else "failed", error)

    def on_task_instance_skipped(self, previous_state, task_instance):
        self._finished(task_instance, "skipped", None)

    def _finished(self, ti, state: str, error) -> None:
        key = self._key(ti)
        began, mark = self.started.pop(key, (time.monotonic(), None))
        try:
            note = self.probe.after(*key, mark)
        except Exception as err:  # a note is a nicety; never fail a task over it
            log.warning("could not describe %s.%s: %s", *key, err)
            note = ""
        self.seen.add((*key, getattr(ti, "run_id", "")))
        self.events.emit(
            event="task_finished",
            dag_id=key[0],
            task_id=key[1],
            state=state,
            seconds=round(time.monotonic() - began, 1),
            note=note,
            error=_error_text(error),
            try_number=getattr(ti, "try_number", None),
        )

    HOOKS = (
        "on_task_instance_running",
        "on_task_instance_success",
        "on_task_instance_failed",
        "on_task_instance_skipped",
    )


def _error_text(error) -> str | None:
    if error is None:
        return None
    text = str(error).strip() or type(error).__name__
    return text[:2000]


_listener: TaskListener | None = None


def _install_listener(events: Events) -> TaskListener:
    global _listener
    if _listener is None:
        # Marked as Airflow hook implementations here, so importing this module imports no Airflow.
        from airflow.listeners import hookimpl
        from airflow.sdk.listener import get_listener_manager

        for name in TaskListener.HOOKS:
            hookimpl(getattr(TaskListener, name))

        _listener = TaskListener(events, os.environ.get("WAREHOUSE_URL"))
        get_listener_manager().add_listener(_listener)
    return _listener


def run_dag(dag_id: str, events: Events, conf: dict | None = None) -> bool:
    """One ``dag.test()`` run; True if it succeeded. Tasks that never ran are reported too."""
    from airflow.utils.cli import get_bagged_dag
    from airflow.utils.state import DagRunState

    listener = _install_listener(events)
    started = time.monotonic()
    events.emit(event="dag_started", dag_id=dag_id)
    dag = get_bagged_dag(bundle_names=None, dag_id=dag_id)
    for task in dag.tasks:
        if task.retry_delay and task.retry_delay > RETRY_DELAY:
            task.retry_delay = RETRY_DELAY
    dag_run = dag.test(run_conf=conf or None)
    state = dag_run.state if dag_run else None
    ok = state == DagRunState.SUCCESS
    if dag_run is not None:
        from airflow.utils.session import create_session

        with create_session() as session:
            for ti in dag_run.get_task_instances(session=session):
                if (dag_id, ti.task_id, dag_run.run_id) in listener.seen:
                    continue
                events.emit(
                    event="task_finished",
                    dag_id=dag_id,
                    task_id=ti.task_id,
                    state=str(ti.state or "not run").rsplit(".", 1)[-1].lower(),
                    seconds=None,
                    note="after a failure upstream" if "upstream" in str(ti.state) else "",
                    error=None,
                )
    seconds = round(time.monotonic() - started, 1)
    log.info("DAG %s: %s in %.1f s", dag_id, state, seconds)
    events.emit(event="dag_finished", dag_id=dag_id, state="success" if ok else "failed", seconds=seconds)
    return ok


def run(dag_ids: list[str], events: Events | None = None) -> list[str]:
    """Run each DAG with ``dag.test()``; return the ids of those whose run failed."""
    events = events or Events()
    return [dag_id for dag_id in dag_ids if not run_dag(dag_id, events)]


def run_pipeline(full_refresh: bool = False, events: Events | None = None) -> list[str]:
    """The pipeline of ``bw run`` (module docstring); return the ids of DAG runs that failed."""
    from include.config import settings
    from include.transform import dbt as transform

    events = events or Events()
    url = os.environ["WAREHOUSE_URL"]
    failed = run(list(EXTRACT_DAGS), events)
    decision = transform.needs_transform(url, full_refresh=full_refresh)
    events.emit(event="decision", needed=decision.needed, reason=decision.reason)
    if not decision.needed:
        events.emit(event="dag_skipped", dag_id=TRANSFORM_DAG, reason=decision.reason)
        cfg = settings()
        published = any(p.is_dir() and not p.name.startswith(".") for p in _release_dirs(cfg.release_dir))
        if published and (cfg.site_dir / "index.html").exists():
            for dag_id in PUBLISH_DAGS:
                events.emit(event="dag_skipped", dag_id=dag_id, reason="the marts did not change")
            return failed
        # Nothing changed but no release or site exists here yet (a new RELEASE_DIR): publish them.
    elif not run_dag(TRANSFORM_DAG, events, conf={"full_refresh": True} if full_refresh else None):
        for dag_id in PUBLISH_DAGS:
            events.emit(
                event="dag_skipped",
                dag_id=dag_id,
                reason="the transform failed: nothing published, the previous one stays current",
            )
        return [*failed, TRANSFORM_DAG]
    return failed + run(list(PUBLISH_DAGS), events)


def _release_dirs(root):
    return list(root.iterdir()) if root.is_dir() else []


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    full_refresh = "--full-refresh" in argv
    dag_ids = [a for a in argv if not a.startswith("--")]
    events = Events()
    if "--pipeline" in argv:
        failed = run_pipeline(full_refresh=full_refresh, events=events)
    else:
        failed = run(dag_ids, events)
    if failed:
        print(f"failed DAG runs: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
