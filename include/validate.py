"""Great Expectations suites from ``expectations/<entity>.json``, run on a staged batch.

GX Core is called directly (no Airflow provider, see STACK_FACTS.md) and imported only inside
:func:`validate_batch`, so DAG files stay quick to parse. Every expectation carries
``meta.severity``: ``critical`` (a failure quarantines the whole batch) or ``warning`` (recorded,
loading goes on). Results go to ``audit.validation_results`` and to the Data Docs site in
``$DOCS_DIR/data_docs`` (GX's own stores live beside it, in ``$DOCS_DIR/gx_state``), which the
loader rebuilds once per run (:func:`build_docs`). One GX context serves a whole process.
"""

from __future__ import annotations

import fcntl
import json
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from include import db
from include.config import PROJECT_DIR, settings

log = logging.getLogger(__name__)

EXPECTATIONS_DIR = PROJECT_DIR / "expectations"
SEVERITIES = ("critical", "warning")
EXAMPLES = 5  # unexpected values kept per expectation in audit


@dataclass(frozen=True)
class Check:
    """One expectation's outcome, as recorded in ``audit.validation_results``."""

    expectation: str
    expectation_id: str | None
    severity: str
    success: bool
    unexpected_count: int | None
    unexpected_values: list
    details: str | None = None


@dataclass
class Outcome:
    suite: str
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0  # validating this batch (queries, GX's work, recording the results)
    startup_seconds: float = 0.0  # importing GX and building its context: the first batch of a process

    @property
    def failed_critical(self) -> list[str]:
        return [c.expectation for c in self.checks if c.severity == "critical" and not c.success]

    @property
    def failed_warnings(self) -> list[str]:
        return [c.expectation for c in self.checks if c.severity == "warning" and not c.success]


def suite_path(entity: str) -> Path:
    return EXPECTATIONS_DIR / f"{entity}.json"


def load_suite_json(entity: str) -> dict:
    """The suite as stored, checked for a severity on every expectation (a suite without one is a bug)."""
    spec = json.loads(suite_path(entity).read_text())
    for i, exp in enumerate(spec["expectations"]):
        severity = (exp.get("meta") or {}).get("severity")
        if severity not in SEVERITIES:
            raise ValueError(
                f"{suite_path(entity).name}: expectation {i} ({exp['type']}) has no valid meta.severity"
            )
    return spec


def label(exp: dict) -> str:
    """A readable, stable name of an expectation: its meta.rule, else its type and columns."""
    meta = exp.get("meta") or {}
    if meta.get("rule"):
        return meta["rule"]
    kwargs = exp.get("kwargs", {})
    cols = (
        kwargs.get("column") or kwargs.get("column_list") or [kwargs.get("column_A"), kwargs.get("column_B")]
    )
    cols = cols if isinstance(cols, str) else ",".join(c for c in cols if c)
    return f"{exp['type']}({cols})"


@contextmanager
def _gx_lock(state_dir: Path):
    """GX's file stores and Data Docs are not safe for concurrent writers (parallel table tasks)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _context(state_dir: Path, docs_dir: Path):
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        FilesystemStoreBackendDefaults,
    )

    config = DataContextConfig(
        store_backend_defaults=FilesystemStoreBackendDefaults(root_directory=str(state_dir)),
        data_docs_sites={
            "data_docs": {
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(docs_dir),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            }
        },
        analytics_enabled=False,
    )
    context = gx.get_context(project_config=config, mode="ephemeral")
    context.variables.progress_bars = {"globally": False, "metric_calculations": False}
    return context


class _Session:
    """GX's context, the warehouse data source and the suites, built once per process and warehouse.

    Importing GX (~5 s) and building a context (~0.5 s) dwarf validating a small batch: a run that
    loads several batches pays them once. Data Docs are built by :func:`build_docs`, once per run.
    """

    def __init__(self, url: str, docs_dir: Path):
        started = time.perf_counter()
        self.url = url
        self.state_dir = docs_dir / "gx_state"
        self.context = _context(self.state_dir, docs_dir / "data_docs")
        self.suites: dict[str, tuple[dict, object, object]] = {}
        self.pending_docs: list = []  # validation results not yet rendered in Data Docs
        self.startup_seconds = time.perf_counter() - started

    def suite(self, entity: str):
        """The entity's suite as stored, its GX suite, and its data source.

        One data source (SQLAlchemy engine) per entity: GX caches column metadata in its engine, and
        shared between entities it resolved ``cycle`` (improvement items) as ``"Cycle"`` (exports).
        """
        if entity not in self.suites:
            import great_expectations as gx

            spec = load_suite_json(entity)
            suite = self.context.suites.add_or_update(gx.ExpectationSuite(**spec))
            source = self.context.data_sources.add_or_update_postgres(
                f"warehouse_{entity}", connection_string=db.sqlalchemy_url(self.url)
            )
            self.suites[entity] = (spec, suite, source)
        return self.suites[entity]

    def close(self) -> None:
        for _, _, source in self.suites.values():
            source.get_execution_engine().close()


_session: _Session | None = None


def _session_for(url: str) -> _Session:
    """The process's GX session for this warehouse and ``DOCS_DIR`` (a new one if either changed)."""
    global _session
    docs_dir = settings().docs_dir
    if _session is None or (_session.url, _session.state_dir) != (url, docs_dir / "gx_state"):
        if _session is not None:
            _session.close()
        _session = _Session(url, docs_dir)
    return _session


def validate_batch(url: str, entity: str, schema: str, table: str, batch_id: int) -> Outcome:
    """Run ``expectations/<entity>.json`` on ``schema.table`` and record every result.

    ``url`` is the warehouse (GX reads the staged table through its own SQLAlchemy connection;
    results are written as the ``loader`` role). The suite may use the parameter ``today``.

    Two passes keep the cost at about one query per expectation: the whole suite with
    ``partial_unexpected_count = 0`` (counts, no example queries, which scan the whole table when
    nothing is wrong), then, for the failed column expectations only, a second run that fetches up
    to :data:`EXAMPLES` unexpected values. Data Docs are not built here: call :func:`build_docs`
    once the run's batches are validated.
    """
    import datetime as dt

    session = _session_for(url)
    startup, session.startup_seconds = session.startup_seconds, 0.0  # paid once per process
    started = time.perf_counter()
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    spec, suite, source = session.suite(entity)
    params = {"today": dt.date.today().isoformat()}
    asset_name = f"{schema}.{table}"
    with _gx_lock(session.state_dir):
        asset = source.add_table_asset(name=asset_name, table_name=table, schema_name=schema)
        try:
            batch_definition = asset.add_batch_definition_whole_table("whole table")
            batch = batch_definition.get_batch()
            result = batch.validate(
                suite,
                result_format={"result_format": "BASIC", "partial_unexpected_count": 0},
                expectation_parameters=params,
            )
            examples = _examples(batch, entity, result.results, params)
            # Stored as a checkpoint would, for Data Docs (built once per run by build_docs).
            key = ValidationResultIdentifier(
                expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite.name),
                run_id=RunIdentifier(run_name=f"batch_{batch_id}"),
                batch_identifier=batch.id,
            )
            result.meta["run_id"] = key.run_id
            session.context.validation_results_store.set(key, result)
            session.pending_docs.append(key)
        finally:
            source.delete_asset(asset_name)  # the asset names this batch's table only
    outcome = Outcome(suite=spec["name"], startup_seconds=startup)
    for r in result.results:
        exp = r.expectation_config.to_json_dict()
        outcome.checks.append(_check(exp, r, examples.get(exp.get("id"))))
    outcome.seconds = time.perf_counter() - started
    record(url, batch_id, outcome)
    if outcome.failed_warnings:
        log.warning("batch %s: warnings from %s: %s", batch_id, entity, ", ".join(outcome.failed_warnings))
    return outcome


def _examples(batch, entity: str, results, params: dict) -> dict[str, list]:
    """Up to EXAMPLES unexpected values of each failed column expectation (a second, small run)."""
    import great_expectations as gx

    failed = [
        r.expectation_config
        for r in results
        if not r.success and "partial_unexpected_list" in (r.result or {}) and r.expectation_config.id
    ]
    if not failed:
        return {}
    suite = gx.ExpectationSuite(name=f"{entity}_examples", expectations=[e.to_json_dict() for e in failed])
    detail = batch.validate(
        suite,
        result_format={"result_format": "BASIC", "partial_unexpected_count": EXAMPLES},
        expectation_parameters=params,
    )
    return {
        r.expectation_config.id: (r.result or {}).get("partial_unexpected_list") or [] for r in detail.results
    }


def build_docs(url: str | None = None) -> None:
    """Rebuild the Data Docs site once, after a run's validations (no-op if nothing was validated)."""
    session = _session
    if session is None or not session.pending_docs or (url is not None and session.url != url):
        return
    with _gx_lock(session.state_dir):
        # Only this run's pages (and the index): older results were rendered by their own run.
        session.context.build_data_docs(resource_identifiers=session.pending_docs)
    session.pending_docs = []


def _check(exp: dict, r, examples: list | None = None) -> Check:
    res = r.result or {}
    count = res.get("unexpected_count")
    if count is None and exp["type"] == "unexpected_rows_expectation":
        count = res.get("observed_value")
    values = examples if examples is not None else res.get("partial_unexpected_list") or []
    messages = _exception_messages(r.exception_info)
    details = "; ".join(messages)[:2000] if messages else None
    return Check(
        expectation=label(exp),
        expectation_id=exp.get("id"),
        severity=(exp.get("meta") or {}).get("severity", "critical"),
        success=bool(r.success),
        unexpected_count=int(count) if isinstance(count, int | float) else None,
        unexpected_values=json.loads(json.dumps(values[:EXAMPLES], default=str)),
        details=details,
    )


def _exception_messages(info) -> list[str]:
    """GX nests exception info per metric; collect the messages of those that were raised."""
    if not isinstance(info, dict):
        return []
    if info.get("raised_exception"):
        return [str(info.get("exception_message"))]
    return [m for value in info.values() for m in _exception_messages(value)]


def record(url: str, batch_id: int, outcome: Outcome) -> None:
    """Write the outcome to ``audit.validation_results`` (its own committed transaction)."""
    with db.connect(url, role="loader") as conn, conn.cursor() as cur:
        cur.executemany(
            """
            insert into audit.validation_results (batch_id, suite, expectation, expectation_id, severity,
                success, unexpected_count, unexpected_values, details)
            values (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s)
            """,
            [
                (
                    batch_id,
                    outcome.suite,
                    c.expectation,
                    c.expectation_id,
                    c.severity,
                    c.success,
                    c.unexpected_count,
                    json.dumps(c.unexpected_values),
                    c.details,
                )
                for c in outcome.checks
            ],
        )
