"""
### Extract case management

Every hour, extracts the case-management tables (data contract §2) incrementally on `updated_at`
(deletions arrive as rows with `deleted_at` set), one task per table. Each task stages the changed
rows with `COPY`, validates them with `expectations/cm_<table>.json` and publishes them to
`raw.cm_<table>` in one transaction that also moves the table's watermark (`audit.watermarks`).
A task fails if its batch was quarantined by a critical expectation; the watermark then stays
where it was, and the rows are read again on the next run.

Produces the assets `raw.cm_<table>`, which trigger the transform DAG.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from include.assets import CASE_MANAGEMENT_TABLES, RAW_CASE_MANAGEMENT
from include.dag_defaults import DEFAULT_ARGS, START_DATE


@dag(
    dag_id="extract_case_management",
    schedule="@hourly",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    default_args=DEFAULT_ARGS,
    tags=["extract", "case-management", "raw"],
)
def extract_case_management():
    @task
    def bootstrap() -> None:
        """Create the warehouse schemas and tables if missing (idempotent)."""
        from include import connections, warehouse

        warehouse.bootstrap(connections.warehouse_url())

    def extract(table: str):
        @task(task_id=f"load_{table}", outlets=[RAW_CASE_MANAGEMENT[table]])
        def load_table() -> dict:
            from airflow.sdk.exceptions import AirflowFailException

            from include import connections, load

            try:
                return load.load_case_management_table(
                    connections.warehouse_url(), connections.ops_url(), table
                )
            except load.LoadFailed as err:
                raise AirflowFailException(str(err)) from err

        return load_table()

    ready = bootstrap()
    for table in CASE_MANAGEMENT_TABLES:
        ready >> extract(table)


extract_case_management()
