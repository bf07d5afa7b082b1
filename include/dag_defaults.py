"""What every DAG of the project shares, so that owner and retry policy are set in one place."""

from __future__ import annotations

from datetime import datetime, timedelta

START_DATE = datetime(2025, 1, 1)
"""No DAG catches up: the start date only has to lie in the past."""

DEFAULT_ARGS = {
    "owner": "betterwork-data",
    # Tasks are re-runnable (loads are idempotent), so a transient failure is retried;
    # data failures raise AirflowFailException and are not.
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
}
