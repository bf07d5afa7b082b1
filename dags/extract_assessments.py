"""
### Extract assessment exports

Every hour, loads the assessment export files (CSV or XLSX) that landed in
`$LANDING_DIR/assessments/`, are complete (not a `.part`/`.tmp`/`.crdownload`/hidden/`~$` name,
size and time stable) and were not loaded before (a file is known by its content checksum, so a
renamed copy loads nothing). Each file is one batch: read once (hashed, its encoding detected),
parsed as a stream, staged with `COPY`, validated with the Great Expectations suite
`expectations/assessment_export_rows.json`, then published to `raw.assessment_export_rows` in one
transaction (records that cannot be parsed go to `quarantine.rejected_rows`, their assessments
held). Anything that goes wrong with one file rejects that file only. The task fails without retry
(`AirflowFailException`), after loading every good file, if a file was rejected, a batch
quarantined or an assessment held; the first line of the error names them. See
`audit.load_batches`, `quarantine.rejected_rows` and `audit.validation_results`; a batch's life
(stage, validate, publish, crash recovery) is described in docs/LOADING.md.

Produces the asset `raw.assessment_export_rows`, which triggers the transform DAG: an event only
when rows were loaded (emitted through an asset alias), so a run with no new file triggers nothing.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from include.orchestration.assets import RAW_ASSESSMENT_EXPORT_ROWS, loaded_alias
from include.orchestration.dag_defaults import DEFAULT_ARGS, START_DATE

LOADED = loaded_alias(RAW_ASSESSMENT_EXPORT_ROWS)


@dag(
    dag_id="extract_assessments",
    schedule="@hourly",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    default_args=DEFAULT_ARGS,
    tags=["extract", "assessments", "raw"],
)
def extract_assessments():
    @task(outlets=[LOADED])
    def load_exports(*, outlet_events=None) -> dict:
        """Bootstrap the warehouse (idempotent) and load the new export files."""
        from airflow.sdk.exceptions import AirflowFailException

        from include import load, warehouse
        from include.config import settings
        from include.orchestration import connections

        url = connections.warehouse_url()
        warehouse.bootstrap(url)
        try:
            summary = load.load_assessment_exports(url, settings().landing_dir)
        except load.LoadFailed as err:
            # Bad input does not get better on retry: fail now, the good files are loaded.
            raise AirflowFailException(str(err)) from err
        if summary["rows_loaded"]:  # nothing new: no event, the transform is not triggered
            outlet_events[LOADED].add(RAW_ASSESSMENT_EXPORT_ROWS, extra={"rows": summary["rows_loaded"]})
        return summary

    load_exports()


extract_assessments()
