"""Great Expectations suites from ``expectations/<entity>.json``, run on a staged batch.

GX Core is called directly (the Airflow provider for GX cannot be installed beside Airflow 3.3)
and imported only inside :func:`validate_batch`, so DAG files stay quick to parse. Every expectation carries
``meta.severity``: ``critical`` (a failed rule about a row quarantines the rows that break it; a
failed rule about the batch as a whole holds the batch: :func:`split_failures`) or ``warning``
(recorded, loading goes on). Results go to ``audit.validation_results`` and to the Data Docs site in
``$DOCS_DIR/data_docs`` (GX's own stores live beside it, in ``$DOCS_DIR/gx_state``), which the
loader rebuilds once per run (:func:`build_docs`). One GX context serves a whole process.

Several batches of one entity (a run's new export files) are validated together by
:func:`validate_batches`: once over a view of all their stage tables; what that finds is then told
apart by batch (by the ``_batch_id`` of the unexpected rows, or by running that expectation again
per batch). GX's own work per validation and per query, not the rows, is most of what a small
batch costs: a run of many files pays it about once.
"""

from __future__ import annotations

import fcntl
import json
import logging
import queue
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from psycopg import sql

from include import db
from include.config import PROJECT_DIR, settings
from include.validate import plan, row_rules, sql_columns
from include.validate.row_rules import (  # noqa: F401  (the names validate has always offered)
    BATCH_RULE_TYPES,
    gx_condition_sql,
    label,
    row_condition,
)

log = logging.getLogger(__name__)

EXPECTATIONS_DIR = PROJECT_DIR / "expectations"
SEVERITIES = ("critical", "warning")
EXAMPLES = 5  # unexpected values kept per expectation in audit

UNION_SAFE = plan.UNION_SAFE  # GX expectations whose clean result on a union proves each part clean
CUSTOM_SQL = plan.CUSTOM_SQL  # custom SQL expectations: a query whose rows are the unexpected ones


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
        if exp["meta"].get("row_wise") and not _selects_batch_id(exp):
            raise ValueError(
                f"{suite_path(entity).name}: expectation {i} ({exp['meta'].get('rule')}) is row_wise, "
                "so its query must select _batch_id (to tell batches apart when validated together)"
            )
    return spec


def _selects_batch_id(exp: dict) -> bool:
    """A custom SQL rule whose query returns ``_batch_id`` (:mod:`include.validate.sql_columns`)."""
    query = exp["kwargs"].get("unexpected_rows_query", "")
    return exp["type"] in CUSTOM_SQL and sql_columns.selects(query, "_batch_id")


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
    from include.validate import gx_adapter, gx_custom  # noqa: F401  (gx_custom registers expect_no_unexpected_rows)

    return gx_adapter.ephemeral_context(state_dir, docs_dir, _template_cache(state_dir))


def _template_cache(state_dir: Path) -> str:
    """Where Data Docs' compiled Jinja templates are kept (include/validate/gx_custom.py)."""
    folder = state_dir / "jinja"
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder)


class _Session:
    """GX's context, the warehouse data sources and the suites, built once per process and warehouse.

    Importing GX (~5 s) and building a context (~0.5 s) dwarf validating a small batch: a run that
    loads several batches pays them once. Data Docs are built by :func:`build_docs`, once per run.
    """

    def __init__(self, url: str, docs_dir: Path, threads: int):
        started = time.perf_counter()
        self.url = url
        self.threads = threads
        self.state_dir = docs_dir / "gx_state"
        self.context = _context(self.state_dir, docs_dir / "data_docs")
        self.suites: dict[str, tuple[dict, object, list]] = {}
        self.pending_docs: list = []  # validation results not yet rendered in Data Docs
        self.startup_seconds = time.perf_counter() - started

    def suite(self, entity: str):
        """The entity's suite as stored, its GX suite, and its data sources (one per thread).

        Data sources (SQLAlchemy engines) per entity: GX caches column metadata in its engine, and
        shared between entities it resolved ``cycle`` (improvement items) as ``"Cycle"`` (exports).
        One per validation thread: GX's execution engine holds the batch it is working on.
        """
        if entity not in self.suites:
            import great_expectations as gx

            spec = load_suite_json(entity)
            suite = self.context.suites.add_or_update(gx.ExpectationSuite(**spec))
            sources = [
                self.context.data_sources.add_or_update_postgres(
                    f"warehouse_{entity}" + (f"_{n}" if n else ""),
                    connection_string=db.sqlalchemy_url(self.url),
                )
                for n in range(self.threads)
            ]
            self.suites[entity] = (spec, suite, sources)
        return self.suites[entity]

    def close(self) -> None:
        from include.validate import gx_adapter

        for _, _, sources in self.suites.values():
            for source in sources:
                gx_adapter.close_data_source(source)


_session: _Session | None = None


def _session_for(url: str) -> _Session:
    """The process's GX session for this warehouse and ``DOCS_DIR`` (a new one if either changed)."""
    global _session
    config = settings()
    docs_dir, threads = config.docs_dir, config.validation_threads
    if _session is None or (_session.url, _session.state_dir, _session.threads) != (
        url,
        docs_dir / "gx_state",
        threads,
    ):
        if _session is not None:
            _session.close()
        _session = _Session(url, docs_dir, threads)
    return _session


def warm_up(url: str, entity: str | None = None) -> float:
    """Import GX and build this process's session now (as a long-lived worker would have); seconds.

    With an ``entity``, its suite and data sources too, and Data Docs' templates compiled (~0.4 s
    more the first time for a ``DOCS_DIR``, ~0.2 s later).
    """
    session = _session_for(url)
    if entity is not None:
        from include.validate import gx_custom

        session.suite(entity)
        gx_custom.compile_templates(_template_cache(session.state_dir))  # for this run's Data Docs
    seconds, session.startup_seconds = session.startup_seconds, 0.0
    return seconds


def validate_batch(url: str, entity: str, schema: str, table: str, batch_id: int) -> Outcome:
    """Run ``expectations/<entity>.json`` on ``schema.table`` (one batch) and record every result.

    ``url`` is the warehouse (GX reads the staged table through its own SQLAlchemy connection;
    results are written as the ``loader`` role). The suite may use the parameter ``today``.

    Two passes keep the cost at about one query per expectation: the whole suite with
    ``partial_unexpected_count = 0`` (counts, no example queries, which scan the whole table when
    nothing is wrong), then, for the failed column expectations only, a second run that fetches up
    to :data:`EXAMPLES` unexpected values. Data Docs are not built here: call :func:`build_docs`
    once the run's batches are validated.
    """
    return validate_batches(url, entity, schema, {batch_id: table})[batch_id]


def validate_batches(url: str, entity: str, schema: str, tables: dict[int, str]) -> dict[int, Outcome]:
    """Validate several staged batches of one entity (``{batch_id: table}``) and record each result.

    With one batch, the suite runs on its table, then (for their examples only) the failed column
    expectations once more. With several, on a view that is the union of their tables (each holds
    its ``_batch_id`` and a ``CHECK`` on it, so a query filtered on one batch scans one table):

    1. every :data:`UNION_SAFE` expectation once for all batches; one that finds nothing there has
       found nothing in any batch. Any other expectation once per batch, on its rows only;
    2. what found something is told apart by batch: a custom query's unexpected rows carry their
       ``_batch_id`` (when GX returned all of them, at most 200); anything else runs again once per
       batch, with examples.

    A batch's rows are a row condition ``_batch_id == <id>`` for GX's own expectations and, for a
    custom SQL expectation marked ``row_wise`` (its query selects ``_batch_id``), its query filtered
    on that column. Another custom SQL expectation runs on each batch's own table.
    Every batch gets one result per expectation of the suite in ``audit.validation_results``, the
    same as if it had been validated alone (tested).
    """
    import datetime as dt

    session = _session_for(url)
    startup, session.startup_seconds = session.startup_seconds, 0.0  # paid once per process
    started = time.perf_counter()
    spec, suite, sources = session.suite(entity)
    ids = {(e.meta or {}).get("rule"): e.id for e in suite.expectations}
    expectations = [{**exp, "id": ids.get(exp["meta"]["rule"])} for exp in spec["expectations"]]
    run = _Run(session, sources, schema, spec["name"], {"today": dt.date.today().isoformat()})
    with _gx_lock(session.state_dir):
        found = _run_passes(run, url, tables, expectations)
    seconds = time.perf_counter() - started
    outcomes = _outcomes(spec["name"], expectations, list(tables), found)
    for n, outcome in enumerate(outcomes.values()):
        outcome.startup_seconds = startup if n == 0 else 0.0
        outcome.seconds = seconds / len(tables)  # the group's validation time, shared out evenly
    _mask_personal(entity, expectations, outcomes)
    record_all(url, outcomes)
    for batch_id, outcome in outcomes.items():
        if outcome.failed_warnings:
            log.warning(
                "batch %s: warnings from %s: %s", batch_id, entity, ", ".join(outcome.failed_warnings)
            )
    return outcomes


def _run_passes(run: _Run, url: str, tables: dict[int, str], expectations: list[dict]) -> dict:
    """GX's results of the passes :mod:`include.validate.plan` plans, by (rule, batch id or None)."""
    single = len(tables) == 1
    target = next(iter(tables.values())) if single else _union_view(url, run.schema, tables)
    try:
        page = f"batch_{min(tables)}" if single else f"batches_{min(tables)}-{max(tables)}"
        found = run.validate(target, plan.union_pass(expectations, tables), page)
        follow_up = plan.follow_up_pass(expectations, tables, _findings(found))
        if follow_up:  # examples and shares only: the first pass's page in Data Docs shows the failures
            found.update(run.validate(target, follow_up, None, examples=EXAMPLES))
    finally:
        if not single:
            _drop_union_view(url, run.schema, target)
    own_table = plan.own_table_pass(expectations, tables)
    for batch_id, table in tables.items() if own_table else ():
        mine = run.validate(table, own_table, None, examples=EXAMPLES)
        found.update({(rule, batch_id): r for (rule, _), r in mine.items()})
    return found


def _outcomes(suite: str, expectations: list[dict], batch_ids: list[int], found: dict) -> dict[int, Outcome]:
    """Each batch's checks, from the run's GX results (:func:`include.validate.plan.result_for`)."""
    findings = _findings(found)
    outcomes = {}
    for batch_id in batch_ids:
        outcome = Outcome(suite=suite)
        for exp in expectations:
            key, share = plan.result_for(exp["meta"]["rule"], batch_id, findings, len(batch_ids) == 1)
            outcome.checks.append(_check(exp, found[key], batch_id=batch_id if share else None))
        outcomes[batch_id] = outcome
    return outcomes


def _findings(found: dict) -> dict[plan.Key, plan.Finding]:
    """What the planner needs of each GX result."""
    return {
        key: plan.Finding(
            clean=_clean(r), rows_name_batches=_rows_tell_batches(r), wants_examples=_wants_examples(r)
        )
        for key, r in found.items()
    }


def _mask_personal(entity: str, expectations: list[dict], outcomes: dict[int, Outcome]) -> None:
    """Examples of a personal table's rules hold no personal value (include/personal_data.py).

    The suites' custom rules select keys only and no GX rule's examples are values of a personal
    column; this is the safety net for a rule added without that care.
    """
    from include import personal_data

    personal = personal_data.PERSONAL_COLUMNS.get(entity)
    if not personal:
        return
    from include import warehouse

    key = warehouse.pseudonym_key(settings())
    columns = {label(e): e["kwargs"].get("column") for e in expectations}
    for outcome in outcomes.values():
        for i, c in enumerate(outcome.checks):
            if not c.unexpected_values:
                continue
            if columns.get(c.expectation) in personal:
                values = [personal_data.mask(str(v), key) for v in c.unexpected_values]
            else:
                values = [
                    personal_data.mask_record(entity, v, key) if isinstance(v, dict) else v
                    for v in c.unexpected_values
                ]
            outcome.checks[i] = Check(
                c.expectation, c.expectation_id, c.severity, c.success, c.unexpected_count, values, c.details
            )


def _clean(r) -> bool:
    """Succeeded and found no unexpected row at all (``mostly`` may let a few pass: not clean)."""
    res = r.result or {}
    if r.expectation_config.type in CUSTOM_SQL:
        return bool(r.success) and not res.get("observed_value")
    return bool(r.success) and not res.get("unexpected_count")


def _rows_tell_batches(r) -> bool:
    """A custom query whose unexpected rows GX returned every one of (it keeps 200 at most)."""
    if r.expectation_config.type not in CUSTOM_SQL or _exception_messages(r.exception_info):
        return False
    res = r.result or {}
    rows = (res.get("details") or {}).get("unexpected_rows")
    return rows is not None and len(rows) == res.get("observed_value")


def _wants_examples(r) -> bool:
    """A failed column expectation: a second run fetches a few of its unexpected values."""
    return r is not None and not r.success and "partial_unexpected_list" in (r.result or {})


@dataclass
class _Run:
    """GX validations of one entity's tables in a loading run (the caller holds the GX lock)."""

    session: _Session
    sources: list  # GX data sources of the entity, one per validation thread
    schema: str
    suite_name: str
    params: dict

    def validate(self, table: str, expectations: list[dict], page: str | None, examples: int = 0) -> dict:
        """GX results of ``expectations`` on ``schema.table``, by (rule, ``meta.batch_id`` or None).

        GX's own expectations run with ``examples`` unexpected values fetched per failure (0: counts
        only, which spares the example queries; they scan the whole table when nothing is wrong).
        Custom queries run apart, in GX's COMPLETE format: their result then holds up to 200 of
        their rows (fetched anyway). The work (:meth:`_parts`) is shared out between the data
        sources, each in a thread of its own (PostgreSQL runs their queries on as many cores): each
        thread takes the next part as soon as it is done with one, so that a long query on one
        connection does not leave the other idle. With a ``page`` name, the result is stored, as a
        checkpoint would, for Data Docs.
        """
        parts = self._parts(expectations, examples)
        todo: queue.SimpleQueue = queue.SimpleQueue()
        for part in parts:
            todo.put(part)
        used = self.sources[: max(1, min(len(self.sources), len(parts)))]
        name = f"{self.schema}.{table}"
        batches, with_asset = [], []
        try:
            for source in used:  # the context's catalogue changes in this thread only
                asset = source.add_table_asset(name=name, table_name=table, schema_name=self.schema)
                with_asset.append(source)
                batches.append(asset.add_batch_definition_whole_table("whole table").get_batch())
            if len(used) == 1:
                done = self._lane(batches[0], todo)
            else:
                with ThreadPoolExecutor(max_workers=len(used), thread_name_prefix="gx") as pool:
                    lanes = [pool.submit(self._lane, b, todo) for b in batches]
                    done = [result for lane in lanes for result in lane.result()]
        finally:
            for source in with_asset:
                source.delete_asset(name)  # the asset names this table only
        found = {plan.key_of(r.expectation_config.meta): r for result in done for r in result.results}
        if page is not None:  # in the suite's order
            self._store(page, batches[0], done[0], [found[plan.key_of(e["meta"])] for e in expectations])
        return found

    @staticmethod
    def _parts(expectations: list[dict], examples: int) -> list[tuple[list[dict], dict]]:
        """The expectations as units of work, the larger first, each with its GX result format.

        GX bundles the metrics of one validation into one query per row condition, so GX's own
        expectations are one part per row condition (all conditions on one batch's rows of a run
        together); then each custom query is a part of its own.
        """
        groups: dict[str, list[dict]] = {}
        for e in expectations:
            if e["type"] not in CUSTOM_SQL:
                condition = json.dumps(e["kwargs"].get("row_condition"), sort_keys=True)
                groups.setdefault("per batch" if "batch_id" in e["meta"] else condition, []).append(e)
        counts = {"result_format": "BASIC", "partial_unexpected_count": examples}
        return [(group, counts) for group in sorted(groups.values(), key=len, reverse=True)] + [
            ([e], {"result_format": "COMPLETE"}) for e in expectations if e["type"] in CUSTOM_SQL
        ]

    def _lane(self, batch, todo: queue.SimpleQueue) -> list:
        """GX's results of the parts taken from ``todo``, one after another until none is left."""
        import great_expectations as gx

        done = []
        while True:
            try:
                part, result_format = todo.get_nowait()
            except queue.Empty:
                return done
            expectations = [{k: v for k, v in e.items() if k != "id"} for e in part]
            suite = gx.ExpectationSuite(name=self.suite_name, expectations=expectations)
            done.append(
                batch.validate(suite, result_format=result_format, expectation_parameters=self.params)
            )

    def _store(self, page: str, batch, first, every: list) -> None:
        """One validation result with ``every`` expectation's, stored as a checkpoint would, for Data Docs.

        ``first`` is one of the run's GX validation results (for its meta and batch id).
        """
        from include.validate import gx_adapter

        key = gx_adapter.store_validation_result(
            self.session.context, self.suite_name, page, batch, first, every
        )
        self.session.pending_docs.append(key)


def _union_view(url: str, schema: str, tables: dict[int, str]) -> str:
    """A view over the batches' stage tables (same columns, ``_batch_id`` in each)."""
    name = f"run_{min(tables)}_{max(tables)}"
    union = sql.SQL(" union all ").join(
        sql.SQL("select * from {}").format(sql.Identifier(schema, t)) for t in tables.values()
    )
    with db.connect(url) as conn:  # as GX connects: whoever reads the stage tables
        conn.execute(sql.SQL("create or replace view {} as {}").format(sql.Identifier(schema, name), union))
    return name


def _drop_union_view(url: str, schema: str, name: str) -> None:
    with db.connect(url) as conn:
        conn.execute(sql.SQL("drop view if exists {}").format(sql.Identifier(schema, name)))


def build_docs(url: str | None = None) -> None:
    """Rebuild the Data Docs site once, after a run's validations (no-op if nothing was validated)."""
    session = _session
    if session is None or not session.pending_docs or (url is not None and session.url != url):
        return
    with _gx_lock(session.state_dir):
        # Only this run's pages (and the index): older results were rendered by their own run.
        session.context.build_data_docs(resource_identifiers=session.pending_docs)
    session.pending_docs = []


def _check(exp: dict, r, batch_id: int | None = None) -> Check:
    """One expectation's outcome; with ``batch_id``, that batch's share of a custom query's rows."""
    res = r.result or {}
    count = res.get("unexpected_count")
    values = res.get("partial_unexpected_list") or []
    success = bool(r.success)
    if exp["type"] in CUSTOM_SQL:
        count = res.get("observed_value")
        values = (res.get("details") or {}).get("unexpected_rows") or []
        if batch_id is not None:
            values = [row for row in values if row.get("_batch_id") == batch_id]
            count, success = len(values), not values
        # sorted, so that examples do not depend on the order the rows came in
        values = sorted(values, key=lambda row: json.dumps(row, sort_keys=True, default=str))
    messages = _exception_messages(r.exception_info)
    details = "; ".join(messages)[:2000] if messages else None
    return Check(
        expectation=label(exp),
        expectation_id=exp.get("id"),
        severity=(exp.get("meta") or {}).get("severity", "critical"),
        success=success,
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


def record_all(url: str, outcomes: dict[int, Outcome]) -> None:
    """Write the outcomes (by batch id) to ``audit.validation_results`` in one committed transaction."""
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
                for batch_id, outcome in outcomes.items()
                for c in outcome.checks
            ],
        )


def split_failures(entity: str, outcome: Outcome, table: sql.Composable):
    """The failed critical rules as (row rules: [(rule, condition)], batch rules: [rule])."""
    return row_rules.split(load_suite_json(entity)["expectations"], outcome.failed_critical, table)


def record_loader_check(url: str, batch_id: int, rule: str, severity: str, values: list, count: int) -> None:
    """A rule the loader itself applies (change times, schema drift), in ``audit.validation_results``."""
    record_all(
        url,
        {
            batch_id: Outcome(
                suite="loader",
                checks=[
                    Check(
                        rule,
                        None,
                        severity,
                        count == 0,
                        count,
                        json.loads(json.dumps(values[:EXAMPLES], default=str)),
                    )
                ],
            )
        },
    )


def _jsonable(values: list) -> list:
    return json.loads(json.dumps(values, default=str))
