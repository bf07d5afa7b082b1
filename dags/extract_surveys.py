"""
### Extract survey waves

Every hour, loads the worker and manager survey export files (CSV UTF-8 with BOM, or XLSX) that
landed in `$LANDING_DIR/surveys/`, named `<worker|manager>_wave<n>_<YYYY-MM-DD>.csv|.xlsx`, are
complete and were not loaded before. The same file machinery as the assessment exports (landing
protocol, checksums, limits, encodings, one batch per file in `audit.load_batches`, quarantine with
reasons): each file is staged, validated with `expectations/survey_worker_rows.json` or
`expectations/survey_manager_rows.json` and published to `raw.survey_worker_rows` or
`raw.survey_manager_rows`. A file whose name does not say the instrument, or whose header lacks a
required column, is rejected whole; a critical rule (a duplicated `_uuid`, no `wave` or
`factory_id`, an unknown form version) holds the file in quarantine. Warnings (answers out of range,
an unknown factory, a respondent under 14) load the file and are recorded in
`audit.validation_results` and in the batch's message. The task fails without retry, after loading
every good file, if a file was rejected or held. docs/SURVEYS.md.

Produces the assets `raw.survey_worker_rows` and `raw.survey_manager_rows` (an event only for a
table that received rows), which trigger the transform DAG.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from include.orchestration.assets import RAW_SURVEYS, loaded_alias
from include.orchestration.dag_defaults import DEFAULT_ARGS, START_DATE

LOADED = {instrument: loaded_alias(asset) for instrument, asset in RAW_SURVEYS.items()}


@dag(
    dag_id="extract_surveys",
    schedule="@hourly",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    default_args=DEFAULT_ARGS,
    tags=["extract", "surveys", "raw"],
)
def extract_surveys():
    @task(outlets=list(LOADED.values()))
    def load_surveys(*, outlet_events=None) -> dict:
        """Bootstrap the warehouse (idempotent) and load the new survey files."""
        from airflow.sdk.exceptions import AirflowFailException

        from include import load, warehouse
        from include.config import settings
        from include.load import surveys as load_surveys
        from include.orchestration import connections

        url = connections.warehouse_url()
        warehouse.bootstrap(url)
        try:
            summary = load_surveys.load_survey_files(url, settings().landing_dir)
        except load.LoadFailed as err:
            raise AirflowFailException(str(err)) from err  # bad input does not get better on retry
        for instrument, asset in RAW_SURVEYS.items():
            if asset.name in summary["tables_loaded"]:
                outlet_events[LOADED[instrument]].add(asset, extra={"rows": summary["rows_loaded"]})
        return summary

    load_surveys()


extract_surveys()
