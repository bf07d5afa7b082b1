"""
### publish_site

Runs whenever the `transform` DAG has rebuilt the marts (Asset `marts`, which it updates only after
a successful `dbt build`): writes the static site into `SITE_DIR` (default `data/site/`), readable
from disk with no server and no request to any other host:

- `index.html` and the pages beside it, for programme staff: KPIs against the reported figures,
  non-compliance per compliance point and cycle (panel selector), clusters, social dialogue and
  remediation (when those marts exist), data quality from `audit`, one page per factory;
- `public/`, the transparency page: only `public_reporting.factory_public_summary` and
  `factory_public_findings`.

The new site replaces the old one whole at the end, so a reader never sees half of each. The
task also makes the other two static sites work offline: the Great Expectations Data Docs are
pointed at vendored copies of their CDN assets, and the dbt docs lose the errors of their
`file://` loading. Code: `include/serve/site/builder.py`; `make site` serves the folder on 127.0.0.1.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from include.orchestration.assets import MARTS
from include.orchestration.dag_defaults import DEFAULT_ARGS, START_DATE


@dag(
    dag_id="publish_site",
    schedule=[MARTS],
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    default_args=DEFAULT_ARGS,
    tags=["site", "publish"],
)
def publish_site():
    @task
    def build_site() -> dict:
        """Write the site (swapped in whole at the end); return where it is and how many pages."""
        from include.orchestration import connections
        from include.serve.site import builder

        result = builder.build(connections.warehouse_url())
        return {"path": str(result.path), "pages": result.pages, "seconds": round(result.seconds, 2)}

    build_site()


publish_site()
