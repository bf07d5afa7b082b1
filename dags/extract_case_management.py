"""
### Extract case management

Every hour, extracts the case-management tables (docs/SOURCES.md) incrementally on `updated_at`
(deletions arrive as rows with `deleted_at` set), one task per table. Each task stages the changed
rows with `COPY`, validates them with `expectations/cm_<table>.json` and publishes them to
`raw.cm_<table>` in one transaction that also moves the table's watermark (`audit.watermarks`).
A rule about a row (a value outside the contract, a change time in the future) quarantines that
row alone and the rest loads. A task fails, without retry, if a rule about its batch as a whole
failed (its columns, key uniqueness: the batch is held, the watermark stays) or its table cannot be
read as the contract says (a column dropped or renamed); the other tables load regardless.
Tables that others refer to (factories, brands, courses, sessions) are loaded first, so that the
reference checks (warnings) see them. A batch's life (stage, validate, publish, crash recovery)
is described in docs/LOADING.md.

Produces the assets `raw.cm_<table>`, which trigger the transform DAG: an event only when the
task loaded rows (emitted through an asset alias), so a run with nothing new triggers nothing.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from include.orchestration.assets import CASE_MANAGEMENT_TABLES, RAW_CASE_MANAGEMENT, loaded_alias
from include.orchestration.dag_defaults import DEFAULT_ARGS, START_DATE


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
        from include import warehouse
        from include.orchestration import connections

        warehouse.bootstrap(connections.warehouse_url())

    def extract(table: str):
        alias = loaded_alias(RAW_CASE_MANAGEMENT[table])

        @task(task_id=f"load_{table}", outlets=[alias], trigger_rule="all_done")
        def load_table(*, outlet_events=None) -> dict:
            from airflow.sdk.exceptions import AirflowFailException

            from include import load
            from include.orchestration import connections

            try:
                summary = load.load_case_management_table(
                    connections.warehouse_url(), connections.ops_url(), table
                )
            except load.LoadFailed as err:
                raise AirflowFailException(str(err)) from err
            if summary["rows_loaded"]:  # nothing new: no event, the transform is not triggered
                outlet_events[alias].add(RAW_CASE_MANAGEMENT[table], extra={"rows": summary["rows_loaded"]})
            return summary

        return load_table()

    ready = bootstrap()
    tasks = {table: extract(table) for table in CASE_MANAGEMENT_TABLES}
    for table, task_ in tasks.items():
        # trigger_rule all_done: a referenced table that failed does not stop the others
        ready >> task_
        for referenced in REFERENCES.get(table, ()):
            tasks[referenced] >> task_


# Tables whose rows refer to others: loaded after them (the reference checks read raw).
REFERENCES = {
    "factory_brands": ("factories", "brands"),
    "advisory_visits": ("factories",),
    "training_sessions": ("factories", "courses"),
    "training_participants": ("training_sessions",),
    "picc_meetings": ("factories",),
    "improvement_items": ("factories",),
}


extract_case_management()
