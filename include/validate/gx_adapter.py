"""Every use of a Great Expectations API that GX does not document as public, in one place.

GX Core is pinned (``GX_VERSION``, the version in ``uv.lock``); ``tests/unit/test_gx_adapter.py``
fails on any other version, and checks that each private name used here (and by
:mod:`include.validate.gx_custom`) still exists, so that an upgrade is a deliberate step: read
:data:`PRIVATE_APIS`, check each against the new release, then move the pin. Everything else in
the project calls GX's public API (contexts, data sources, suites, ``batch.validate``,
``build_data_docs``).

GX is imported inside the functions: importing this module costs nothing (DAG files stay quick to
parse).
"""

from __future__ import annotations

from pathlib import Path

GX_VERSION = "1.24.1"
"""The GX Core release this adapter was written and tested against (uv.lock)."""

PRIVATE_APIS = (
    # module, attribute: what the project relies on
    ("great_expectations.data_context.types.base", "DataContextConfig"),
    ("great_expectations.data_context.types.base", "FilesystemStoreBackendDefaults"),
    ("great_expectations.data_context.data_context.ephemeral_data_context", "EphemeralDataContext"),
    ("great_expectations.core.run_identifier", "RunIdentifier"),
    ("great_expectations.data_context.types.resource_identifiers", "ExpectationSuiteIdentifier"),
    ("great_expectations.data_context.types.resource_identifiers", "ValidationResultIdentifier"),
    ("great_expectations.validator.validation_statistics", "calc_validation_statistics"),
    ("great_expectations.expectations.metrics.query_metric_provider", "QueryMetricProvider"),
    ("great_expectations.render.view", "DefaultJinjaPageView"),
    ("great_expectations.render.view", "DefaultJinjaIndexPageView"),
)
"""Private or undocumented GX names imported by the project (checked by the unit test)."""

PRIVATE_ATTRIBUTES = (
    # (module, class, attribute): methods and attributes the project calls or replaces
    (
        "great_expectations.data_context.data_context.ephemeral_data_context",
        "EphemeralDataContext",
        "_save_project_config",
    ),
    (
        "great_expectations.expectations.metrics.query_metric_provider",
        "QueryMetricProvider",
        "_get_substituted_batch_subquery_from_query_and_batch_selectable",
    ),
    (
        "great_expectations.expectations.metrics.query_metric_provider",
        "QueryMetricProvider",
        "_get_query_from_metric_value_kwargs",
    ),
    (
        "great_expectations.expectations.core.unexpected_rows_expectation",
        "UnexpectedRowsExpectation",
        "_get_result_format",
    ),
)


def ephemeral_context(state_dir: Path, docs_dir: Path, template_cache: str):
    """An ephemeral GX context with filesystem stores in ``state_dir`` and a Data Docs site in ``docs_dir``.

    The site's views keep their compiled templates in ``template_cache`` (:mod:`include.validate.gx_custom`).
    Private: ``DataContextConfig`` (GX documents ``get_context(project_config=…)`` but not the
    config classes), and ``_save_project_config`` made a no-op: an ephemeral context keeps its
    configuration in memory, yet GX 1.x dumps all of it to YAML into an in-memory store that
    nothing reads back, on each change of a data source, asset or batch definition (~27 ms each,
    six per validation: its assets come and go with the tables).
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        FilesystemStoreBackendDefaults,
    )

    def view(class_name: str) -> dict:  # GX's view, its compiled templates kept in gx_state
        return {
            "module_name": "include.validate.gx_custom",
            "class_name": class_name,
            "template_cache": template_cache,
        }

    config = DataContextConfig(
        store_backend_defaults=FilesystemStoreBackendDefaults(root_directory=str(state_dir)),
        data_docs_sites={
            "data_docs": {
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(docs_dir),
                },
                "site_index_builder": {
                    "class_name": "DefaultSiteIndexBuilder",
                    "view": view("CachedJinjaIndexPageView"),
                },
                "site_section_builders": {
                    section: {"view": view("CachedJinjaPageView")}
                    for section in ("expectations", "validations")
                },
            }
        },
        analytics_enabled=False,
    )
    context = gx.get_context(project_config=config, mode="ephemeral")
    context.variables.progress_bars = {"globally": False, "metric_calculations": False}
    context._save_project_config = lambda: None
    return context


def store_validation_result(context, suite_name: str, page: str, batch, first, every: list):
    """Store one validation result made of ``every`` expectation's result, as a checkpoint would.

    The project runs a suite's expectations in parts (threads, passes) and stores their union as
    one result per page, for Data Docs. ``first`` is one of the run's GX validation results (its
    meta and batch id); ``batch`` the GX batch validated. Returns the result's key (for
    ``build_data_docs(resource_identifiers=…)``). Private: the result and identifier classes, the
    statistics helper and the context's validation results store.
    """
    from great_expectations.core import ExpectationSuiteValidationResult
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )
    from great_expectations.validator.validation_statistics import calc_validation_statistics

    statistics = calc_validation_statistics(every)
    key = ValidationResultIdentifier(
        expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite_name),
        run_id=RunIdentifier(run_name=page),
        batch_identifier=batch.id,
    )
    result = ExpectationSuiteValidationResult(
        results=every,
        success=statistics.success,
        suite_name=suite_name,
        statistics={
            "evaluated_expectations": statistics.evaluated_expectations,
            "successful_expectations": statistics.successful_expectations,
            "unsuccessful_expectations": statistics.unsuccessful_expectations,
            "success_percent": statistics.success_percent,
        },
        meta={**first.meta, "run_id": key.run_id},
        batch_id=first.batch_id,
    )
    context.validation_results_store.set(key, result)
    return key


def release_connections(source) -> None:
    """Close every connection a SQL data source holds; the source stays usable (it reconnects).

    A GX SQL data source has two SQLAlchemy engines, each with its pool: its own (``get_engine``:
    connection tests, the table asset's column lookup) and its execution engine's (the queries).
    Disposing an engine closes its pooled connections and gives it a new, empty pool. Public
    methods, documented nowhere as a pair: kept here beside the private ones.
    """
    source.get_engine().dispose()
    source.get_execution_engine().engine.dispose()


def substituted_query(provider, metric_value_kwargs: dict, batch_selectable, execution_engine) -> str:
    """A custom SQL metric's query with ``{batch}`` replaced by the batch's table (GX's own helper)."""
    return provider._get_substituted_batch_subquery_from_query_and_batch_selectable(
        query=provider._get_query_from_metric_value_kwargs(metric_value_kwargs),
        batch_selectable=batch_selectable,
        execution_engine=execution_engine,
    )


def result_format_of(expectation, runtime_configuration: dict | None):
    """The result format an expectation is asked for (GX's own helper, as its expectations use it)."""
    return expectation._get_result_format(runtime_configuration=runtime_configuration)
