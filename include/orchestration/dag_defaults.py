"""What every DAG of the project shares, so that owner, retry policy and alerts are set in one place."""

from __future__ import annotations

from datetime import datetime, timedelta

from include.orchestration.alerts import PipelineNotifier, keep_dbt_results

START_DATE = datetime(2025, 1, 1)
"""No DAG catches up: the start date only has to lie in the past."""

DEFAULT_ARGS = {
    "owner": "betterwork-data",
    # Tasks are re-runnable (loads are idempotent), so a transient failure is retried;
    # data failures raise AirflowFailException and are not.
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
    # Alerts (include/orchestration/alerts.py; channels from ALERT_* variables, none set = no alert):
    # every task that fails; every task that succeeds but left data-quality warnings (quarantined rows,
    # failed warning expectations, dbt test warnings, stale case management).
    "on_failure_callback": [PipelineNotifier(on="failure")],
    "on_success_callback": [PipelineNotifier(on="success")],
    # Cosmos' dbt operators only (other operators take no `callback`): keep run_results.json for the
    # alert, as Cosmos runs dbt in a temporary copy of the project.
    "callback": keep_dbt_results,
}
