"""Entry point of one case-management table: extract, validate, quarantine bad rows, publish."""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from include.extract import case_management as extract_ops
from include.load import batches, stage_case_management

log = logging.getLogger(__name__)


def load_case_management_table(
    warehouse_url: str, ops_url: str, table: str, *, validate: bool = True
) -> dict:
    """Extract one case-management table incrementally (one batch) and load it.

    Rules about a row (a value outside the contract, a missing value, a change time in the future)
    quarantine that row alone; the rest loads and the watermark moves past it. Rules about the
    batch as a whole (its columns, key uniqueness) hold the batch: every row into quarantine, the
    watermark stays, and :class:`~include.load.batches.LoadFailed` is raised, as it is when the
    table cannot be read as the contract says (a contract column dropped or renamed, a value of
    another type).
    """
    spec = extract_ops.spec(table)
    salt = stage_case_management.version_salt()
    source = stage_case_management.CM_SOURCE
    with batches.loader_session(warehouse_url, f"{source}:{spec.source_object}") as conn:
        batches.abandon_stale(conn, source, spec.source_object)
        window_from = extract_ops.window_start(extract_ops.current_watermark(conn, spec))
        conn.commit()
        batch_id = batches.open_batch(conn, source, spec.source_object, watermark_from=window_from)
        staged = _stage(conn, ops_url, spec, batch_id, window_from, salt)
        if isinstance(staged, batches.BatchResult):
            return batches.summary([staged], table=table)
        _record_loader_rules(warehouse_url, staged)
        if validate and _has_rows(conn, batch_id):
            _validate(conn, warehouse_url, staged, salt)
        result = _publish(conn, staged)
    if result.status == "loaded" and result.rows_loaded:
        batches.analyze(warehouse_url, [spec.raw_table])
    stage_case_management.purge_quarantine(warehouse_url)
    return batches.summary([result], table=table, watermark=str(staged.watermark_to))


@dataclass
class _Staged:
    """A case-management batch staged, on its way to publish."""

    spec: extract_ops.TableSpec
    batch_id: int
    watermark_to: dt.datetime | None
    future: batches.Quarantined  # rows whose change time is after the source's now()
    added: list[str]  # source columns beyond the contract, first seen in this batch
    already_loaded: int = 0
    already_quarantined: int = 0
    outcome: object = None  # GX's outcome (None: not validated)
    hold: list[str] = field(default_factory=list)  # failed rules about the batch as a whole
    by_rule: batches.Quarantined | None = None  # rows quarantined alone, per reason
    seconds: dict[str, float] = field(default_factory=dict)


def _stage(
    conn: psycopg.Connection,
    ops_url: str,
    spec: extract_ops.TableSpec,
    batch_id: int,
    window_from: dt.datetime | None,
    salt: str,
) -> _Staged | batches.BatchResult:
    """Extract the changed rows into the stage table, drop known versions, quarantine future ones."""
    started = time.perf_counter()
    try:
        batches.create_rejects_table(conn, batch_id)
        extracted = extract_ops.stage(conn, ops_url, spec, batch_id, window_from)
    except extract_ops.SourceRejected as err:
        return batches.reject_whole(conn, batch_id, spec.source_object, str(err))
    except psycopg.DataError as err:
        where = f" ({err.diag.context.strip()})" if err.diag.context else ""
        reason = (
            f"{spec.source_object}: a value does not fit the contract's type: {str(err).splitlines()[0]}"
            f"{where}; table {spec.table} was not loaded (a column's type changed at the source?)"
        )
        return batches.reject_whole(conn, batch_id, spec.source_object, reason)
    loaded, quarantined = extract_ops.drop_known(conn, spec, batch_id, salt)
    future = stage_case_management.quarantine_rows(
        conn, batch_id, spec, extract_ops.future_rows(spec, extracted.source_now), salt
    )
    watermark_to = extract_ops.watermark_after(conn, spec, batch_id, window_from, extracted.source_now)
    conn.execute(
        "update audit.load_batches set watermark_to = %s where batch_id = %s", (watermark_to, batch_id)
    )
    conn.commit()
    added = stage_case_management.new_columns(conn, spec.source_object, extracted.unknown_columns)
    staged = _Staged(spec, batch_id, watermark_to, future, added, loaded, quarantined, by_rule=future)
    staged.seconds["stage"] = time.perf_counter() - started
    return staged


def _has_rows(conn: psycopg.Connection, batch_id: int) -> bool:
    """Whether anything is left to validate once known and future row versions are set aside.

    An extract with nothing new (the usual hourly case) skips Great Expectations: there is no row
    for a rule to judge, and starting GX costs seconds (most of a nothing-new run's extraction)."""
    query = sql.SQL("select exists (select 1 from {})").format(batches.stage_table(batch_id))
    return conn.execute(query).fetchone()[0]


def _record_loader_rules(warehouse_url: str, staged: _Staged) -> None:
    """The loader's own rules in audit: change times not in the future; new source columns (once each)."""
    from include.validate import suites as validation

    spec, batch_id, future = staged.spec, staged.batch_id, staged.future
    if spec.change_columns:
        validation.record_loader_check(
            warehouse_url, batch_id, extract_ops.FUTURE_RULE, "critical", future.keys, future.count
        )
    if staged.added:  # each column beyond the contract is reported once, in the batch that first saw it
        added = staged.added
        validation.record_loader_check(
            warehouse_url, batch_id, extract_ops.DRIFT_RULE, "warning", added, len(added)
        )


def _validate(conn: psycopg.Connection, warehouse_url: str, staged: _Staged, salt: str) -> None:
    """GX's suite; the rows that break a row rule quarantined alone, or the whole batch held."""
    from include.validate import suites as validation

    spec, batch_id = staged.spec, staged.batch_id
    outcome = validation.validate_batch(warehouse_url, spec.entity, "stage", f"batch_{batch_id}", batch_id)
    staged.outcome = outcome
    staged.seconds.update(validate=outcome.seconds, validate_startup=outcome.startup_seconds)
    row_rules, staged.hold = validation.split_failures(spec.entity, outcome, batches.stage_table(batch_id))
    if staged.hold:
        reason = "batch held: critical expectations failed: " + ", ".join(staged.hold)
        stage_case_management.quarantine_rows(conn, batch_id, spec, [(reason, sql.SQL("true"))], salt)
    elif row_rules:
        rules = [(batches.rule_reason(rule), cond) for rule, cond in row_rules]
        staged.by_rule = staged.by_rule + stage_case_management.quarantine_rows(
            conn, batch_id, spec, rules, salt
        )
    validation.build_docs(warehouse_url)


def _publish(conn: psycopg.Connection, staged: _Staged) -> batches.BatchResult:
    """Publish the batch (the watermark moves in the same transaction), its message saying what happened."""
    spec, batch_id, by_rule = staged.spec, staged.batch_id, staged.by_rule
    notes = []
    if by_rule.count:
        notes.append(f"{by_rule.count} rows quarantined alone ({by_rule.summary()})")
    if staged.already_loaded:
        notes.append(
            f"{staged.already_loaded} row versions re-read in the look-back window were already loaded"
        )
    if staged.already_quarantined:
        notes.append(f"{staged.already_quarantined} row versions re-read were already quarantined")
    if staged.added:
        notes.append(f"warning: {extract_ops.DRIFT_RULE}: new columns not loaded: {', '.join(staged.added)}")
    result = batches.publish(
        conn,
        batch_id=batch_id,
        source_object=spec.source_object,
        raw_table=spec.raw_table,
        columns=spec.columns,
        outcome=staged.outcome,
        message="; ".join(notes),
        before_commit=lambda c: extract_ops.move_watermark(c, spec, staged.watermark_to, batch_id),
        hold=staged.hold,
    )
    result.seconds.update(staged.seconds)
    log.info(
        "batch %s (%s): %s, %s rows loaded, %s quarantined",
        batch_id,
        spec.source_object,
        result.status,
        result.rows_loaded,
        result.rows_quarantined,
    )
    if by_rule.count:
        log.warning("batch %s (%s): %s", batch_id, spec.source_object, notes[0])
    return result
