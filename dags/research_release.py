"""
### research_release

Runs whenever the `transform` DAG has rebuilt the marts (Asset `marts`): publishes the `research`
schema as a versioned release folder in `RELEASE_DIR` (default `data/releases/`) for academic
partners: every research table as Parquet and CSV, a data dictionary, a codebook, a README with
the counting and suppression rules, and a `MANIFEST.sha256`.

The release reads as database role `researcher`, so it holds exactly what researchers may see.
Its folder is `<date>-<content hash>`: when the data did not change, the existing release is found
and nothing is written. Code: `include/serve/release.py`; roles and rules: `docs/ACCESS.md`.

Nothing is published from a failed transform: the `marts` Asset is updated only after a successful
`dbt build`, and the task itself refuses to run (no retry) when the last finished transform in
`audit.transform_runs` failed, e.g. when started by hand; the previous release stays current.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from include.orchestration.assets import MARTS
from include.orchestration.dag_defaults import DEFAULT_ARGS, START_DATE


@dag(
    dag_id="research_release",
    schedule=[MARTS],
    start_date=START_DATE,
    catchup=False,
    doc_md=__doc__,
    default_args=DEFAULT_ARGS,
    tags=["research", "release"],
)
def research_release():
    @task
    def publish_release() -> dict:
        """Write the release (or find the identical one); return where it is, for the logs and XCom."""
        from airflow.sdk.exceptions import AirflowFailException

        from include.orchestration import connections
        from include.serve import release
        from include.transform import dbt as transform

        url = connections.warehouse_url()
        failure = transform.last_build_failure(url)
        if failure:
            raise AirflowFailException(f"not published: the last transform failed ({failure[:300]})")
        result = release.publish(url)
        return {
            "path": str(result.path),
            "version": result.version,
            "created": result.created,
            "rows": result.tables,
        }

    publish_release()


research_release()
