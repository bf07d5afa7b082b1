"""Transform: build the warehouse's staging, intermediate and mart models with dbt.

Runs whenever an extraction DAG has updated a raw table (any of the raw Assets). The dbt project
(`dbt_project/`) is rendered by astronomer-cosmos from its manifest: one `dbt build` (seeds,
models, snapshot and every test, unit tests included) whose models appear in the UI as tasks
(`ExecutionMode.WATCHER`; see docs/TRANSFORM.md for why it beat one task per model). When the
build has passed, the `marts` Asset is updated, which starts the research release; the dbt docs
site is regenerated beside it.
"""

from __future__ import annotations

from airflow.sdk import AssetAny, dag, task

from include import transform
from include.assets import MARTS, RAW_ASSETS
from include.dag_defaults import DEFAULT_ARGS, START_DATE


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
    def dbt_docs() -> str:
        """Regenerate the dbt docs static site (DOCS_DIR/dbt/index.html)."""
        from include import connections

        return str(transform.generate_docs(connections.warehouse_url()))

    dbt >> [dbt_docs(), marts_built()]


transform_dag()
