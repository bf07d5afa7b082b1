"""
### transform

Builds everything downstream of `raw` with dbt: staging, intermediate, the `marts` (staff and BI),
`research` (pseudonymised and suppressed, for academic partners) and `public_reporting` (the
transparency page). Runs whenever an extraction DAG has loaded rows into a raw table (any of the
raw Assets; an extraction that loaded nothing emits no Asset event). Three tasks:

1. `dbt_build`: **one `dbt build`** of `dbt_project/` (seeds, models, snapshot and every test,
   unit tests included) in a single astronomer-cosmos task (`DbtBuildLocalOperator`, dbt
   in-process), as database role `transformer`. One task beat one task per model under Airflow
   (docs/TRANSFORM.md has the figures); dbt's log in the task log names every node. A failing test
   or a broken model fails the task at once (`AirflowFailException`, no retry: it would fail the
   same way); only a transient database fault is retried. Each build is recorded in
   `audit.transform_runs` (counts of models and tests by status, the failing nodes). A manual run
   with the conf `{"full_refresh": true}` (what `bw run --full-refresh` passes) rebuilds
   incremental models from scratch.
2. `marts_built`: runs only if the build passed; updates the `marts` Asset, which starts
   `research_release` and `publish_site`. A failed build therefore publishes nothing: no Asset
   event, no release, no new site.
3. `dbt_docs`: runs only if the build passed; regenerates the static dbt docs site
   (`DOCS_DIR/dbt/index.html`) only when the dbt project or the warehouse's schema changed.

Models, tests and how the build is run: docs/TRANSFORM.md.
"""

from __future__ import annotations

from airflow.sdk import AssetAny, dag, task

from include.orchestration.assets import MARTS, RAW_ASSETS
from include.orchestration.dag_defaults import DEFAULT_ARGS, START_DATE
from include.transform import dbt as transform


@dag(
    dag_id="transform",
    schedule=AssetAny(*RAW_ASSETS),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    default_args=DEFAULT_ARGS,
    tags=["dbt", "transform"],
)
def transform_dag():
    dbt = transform.cosmos_dbt("dbt_build")

    @task(outlets=[MARTS])
    def marts_built() -> None:
        """Marks the marts as rebuilt and tested (downstream DAGs are scheduled on this Asset)."""

    @task
    def dbt_docs() -> dict:
        """Regenerate the dbt docs static site (DOCS_DIR/dbt/index.html) if the project or schema changed."""
        from include.orchestration import connections

        page, written = transform.generate_docs_if_changed(connections.warehouse_url())
        return {"path": str(page), "regenerated": written}

    dbt >> [dbt_docs(), marts_built()]


transform_dag()
