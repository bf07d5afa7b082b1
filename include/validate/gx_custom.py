"""The project's extensions of Great Expectations, each configured the way GX documents it.

**A custom SQL expectation whose query runs once.** GX 1.x's ``unexpected_rows_expectation``
depends on two metrics, ``unexpected_rows_query.table`` (the first 200 rows) and
``unexpected_rows_query.row_count`` (``SELECT COUNT(*)`` around the query), so PostgreSQL runs every
custom query twice: for a ``GROUP BY`` over every row of a run, that is most of what validation
costs. ``expect_no_unexpected_rows`` takes the same ``unexpected_rows_query`` and gives the same
result (``observed_value``: the number of rows the query returns; in COMPLETE format,
``details.unexpected_rows``: the first 200 of them), from one query that also counts its rows
(``COUNT(*) OVER ()``). It is a subclass of ``UnexpectedRowsExpectation`` with a
``QueryMetricProvider`` of its own, so Data Docs render it like its parent.

**Data Docs views that keep their compiled templates.** GX builds a new Jinja environment for each
page view of each Data Docs build, and so compiles its ~30 templates again every time: most of
what rendering a run's pages costs. The views below (named in the site's configuration, see
``include.validate.suites``) give the environment a ``FileSystemBytecodeCache``, so the templates are
compiled once per ``DOCS_DIR`` (Jinja recompiles one whose source changed, after a GX upgrade).

Importing this module registers the expectation and its metric with GX: :mod:`include.validate.suites`
does so before it loads a suite, inside the task (GX is never imported when a DAG file is parsed).
"""

from __future__ import annotations

from typing import Any, ClassVar

from great_expectations.compatibility.sqlalchemy import sqlalchemy as sa
from great_expectations.constants import MAX_RESULT_RECORDS
from great_expectations.core.metric_domain_types import MetricDomainTypes
from great_expectations.core.result_format import ResultFormat
from great_expectations.execution_engine import SqlAlchemyExecutionEngine
from great_expectations.expectations.core.unexpected_rows_expectation import UnexpectedRowsExpectation
from great_expectations.expectations.metrics.metric_provider import metric_value
from great_expectations.expectations.metrics.query_metric_provider import QueryMetricProvider
from great_expectations.render.view import DefaultJinjaIndexPageView, DefaultJinjaPageView
from jinja2 import FileSystemBytecodeCache

from include.validate import gx_adapter

COUNTED_ROWS = "unexpected_rows_query.counted_rows"
_COUNT_COLUMN = "_gx_rows_found"  # the window count's column, dropped from the rows returned


class UnexpectedRowsQueryCountedRows(QueryMetricProvider):
    """The query's first ``MAX_RESULT_RECORDS`` rows and how many it returns, in one execution."""

    metric_name = COUNTED_ROWS
    value_keys = ("unexpected_rows_query",)
    query_param_name: ClassVar[str] = "unexpected_rows_query"

    @metric_value(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(
        cls,
        execution_engine: SqlAlchemyExecutionEngine,
        metric_domain_kwargs: dict,
        metric_value_kwargs: dict,
        metrics: dict[str, Any],
        runtime_configuration: dict,
    ) -> dict:
        batch_selectable, _, _ = execution_engine.get_compute_domain(
            metric_domain_kwargs, domain_type=MetricDomainTypes.TABLE
        )
        query = gx_adapter.substituted_query(cls, metric_value_kwargs, batch_selectable, execution_engine)
        # No LIMIT: it makes PostgreSQL plan for the first rows (a sort instead of a hash aggregate,
        # twice as slow here). The rows past the first ones are not fetched, as in GX's own metric.
        counted = f"SELECT *, COUNT(*) OVER () AS {_COUNT_COLUMN} FROM ({query}) AS unexpected_rows"
        found = execution_engine.execute_query(sa.text(counted)).fetchmany(MAX_RESULT_RECORDS)
        rows = [row._asdict() for row in found]
        count = rows[0][_COUNT_COLUMN] if rows else 0
        for row in rows:
            del row[_COUNT_COLUMN]
        return {"count": int(count), "rows": rows}


class ExpectNoUnexpectedRows(UnexpectedRowsExpectation):
    """``unexpected_rows_expectation`` with its query run once: fails if the query returns a row."""

    metric_dependencies: ClassVar[tuple[str, ...]] = (COUNTED_ROWS,)

    def _validate(self, metrics: dict, runtime_configuration: dict | None = None, execution_engine=None):
        found = metrics[COUNTED_ROWS]
        result_format = gx_adapter.result_format_of(self, runtime_configuration)
        if isinstance(result_format, dict):
            result_format = result_format.get("result_format", ResultFormat.SUMMARY)
        success = found["count"] == 0
        if result_format == ResultFormat.BOOLEAN_ONLY:
            return {"success": success}
        result: dict[str, Any] = {"observed_value": found["count"]}
        if result_format == ResultFormat.COMPLETE:
            result["details"] = {"unexpected_rows": found["rows"]}
        return {"success": success, "result": result}


class _CompiledTemplates:
    """A GX Jinja view whose environment keeps compiled templates in ``template_cache`` (a folder)."""

    def __init__(self, template_cache: str, **kwargs):
        super().__init__(**kwargs)
        self.env.bytecode_cache = FileSystemBytecodeCache(template_cache)


class CachedJinjaPageView(_CompiledTemplates, DefaultJinjaPageView):
    """GX's page view (suites, validation results), templates compiled once."""


class CachedJinjaIndexPageView(_CompiledTemplates, DefaultJinjaIndexPageView):
    """GX's index page view, templates compiled once."""


def compile_templates(template_cache: str) -> None:
    """Compile GX's Data Docs templates into ``template_cache`` (loaded from it if already there)."""
    env = CachedJinjaPageView(template_cache=template_cache).env
    for name in env.list_templates(extensions=["j2"]):
        env.get_template(name)
