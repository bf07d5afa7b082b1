"""Great Expectations suites from ``expectations/<entity>.json``, run on a staged batch.

GX Core is called directly (the Airflow provider for GX cannot be installed beside Airflow 3.3)
and imported only inside :func:`validate_batch`, so DAG files stay quick to parse. Every expectation carries
``meta.severity``: ``critical`` (a failed rule about a row quarantines the rows that break it; a
failed rule about the batch as a whole holds the batch: :func:`split_failures`) or ``warning``
(recorded, loading goes on). Results go to ``audit.validation_results`` and to the Data Docs site in
``$DOCS_DIR/data_docs`` (GX's own stores live beside it, in ``$DOCS_DIR/gx_state``), which the
loader rebuilds once per run (:func:`build_docs`). One GX session (:mod:`include.validate.session`)
serves a whole process; it holds no connection between validations.

Several batches of one entity (a run's new export files) are validated together by
:func:`validate_batches`: once over a view of all their stage tables; what that finds is then told
apart by batch (by the ``_batch_id`` of the unexpected rows, or by running that expectation again
per batch). GX's own work per validation and per query, not the rows, is most of what a small
batch costs: a run of many files pays it about once.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from psycopg import sql

from include import db
from include.config import PROJECT_DIR, settings
from include.validate import plan, row_rules, session, sql_columns
from include.validate.row_rules import (  # noqa: F401  (the names validate has always offered)
    BATCH_RULE_TYPES,
    gx_condition_sql,
    label,
    row_condition,
)
from include.validate.runner import TableRunner
from include.validate.session import SESSIONS

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


def warm_up(url: str, entity: str | None = None) -> float:
    """Import GX and build this process's session now (as a long-lived worker would have); seconds.

    With an ``entity``, its suite and data sources too, and Data Docs' templates compiled (~0.4 s
    more the first time for a ``DOCS_DIR``, ~0.2 s later). No connection is left open.
    """
    gx_session = SESSIONS.for_warehouse(url)
    if entity is not None:
        from include.validate import gx_custom

        try:
            gx_session.suite(entity)
        finally:
            gx_session.release_connections()
        gx_custom.compile_templates(session.template_cache(gx_session.state_dir))  # for the Data Docs
    return gx_session.take_startup_seconds()


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
    gx_session = SESSIONS.for_warehouse(url)
    startup = gx_session.take_startup_seconds()  # paid once per process
    started = time.perf_counter()
    try:
        expectations, found = _validate_with_gx(gx_session, url, entity, schema, tables)
    finally:
        gx_session.release_connections()  # no connection held between validations
    seconds = time.perf_counter() - started
    outcomes = _outcomes(gx_session.suite(entity).spec["name"], expectations, list(tables), found)
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


def _validate_with_gx(
    gx_session: session.GxSession, url: str, entity: str, schema: str, tables: dict[int, str]
) -> tuple[list[dict], dict]:
    """(the suite's expectations with their GX ids, GX's results of the passes by key)."""
    entity_suite = gx_session.suite(entity)
    ids = {(e.meta or {}).get("rule"): e.id for e in entity_suite.gx_suite.expectations}
    expectations = [{**exp, "id": ids.get(exp["meta"]["rule"])} for exp in entity_suite.spec["expectations"]]
    params = {"today": dt.date.today().isoformat()}
    runner = TableRunner(gx_session, entity_suite.sources, schema, entity_suite.spec["name"], params)
    with gx_session.lock():
        return expectations, _run_passes(runner, url, tables, expectations)


def _run_passes(run: TableRunner, url: str, tables: dict[int, str], expectations: list[dict]) -> dict:
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
    gx_session = SESSIONS.existing(url)
    if gx_session is not None:
        gx_session.build_docs()


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
