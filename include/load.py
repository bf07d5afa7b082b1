"""Batches: stage with ``COPY``, validate, publish to ``raw`` and ``audit`` in one transaction.

A batch's life (docs/INTERNALS.md):

1. ``audit.load_batches`` row with ``status = 'staging'``, committed (the batch id is known);
2. rows ``COPY``-ed into ``stage.batch_<id>`` (rows that cannot be parsed into
   ``stage.batch_<id>_rejects``), committed so that GX's own connection sees them. An export CSV
   whose header is exactly the contract's goes to ``COPY`` as raw bytes (PostgreSQL parses it); if
   ``COPY`` refuses it, that attempt is rolled back and the file is parsed row by row in Python;
3. the entity's suite runs on the stage table (:mod:`include.validate`); a run's new export files
   are all staged first, then validated together (the same results per file as alone);
4. one transaction: no critical failure → the batch goes to raw, rejects into quarantine, batch
   ``loaded`` (and, for case management, the watermark moves); a critical failure → every row into
   quarantine, batch ``quarantined``. The stage tables are then dropped. An export batch goes to
   raw without a second copy: its stage table becomes a partition of ``raw.assessment_export_rows``
   (``ATTACH PARTITION``); case-management batches (small) are ``insert … select``-ed.

A crash before step 4 commits leaves raw untouched: the next run (holding the same advisory lock,
so nothing else can be working on those batches) drops the stale stage tables and marks their
batches ``abandoned``. Every batch satisfies rows read = rows loaded + rows quarantined.

The two task entry points load everything they can, then raise :class:`LoadFailed` naming every
rejected or quarantined batch, so that the Airflow task ends failed and someone looks.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import logging
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from include import db, extract_files, extract_ops

log = logging.getLogger(__name__)

EXPORTS_SOURCE = "assessment_exports"
CM_SOURCE = "case_management"
EXPORT_TABLE = "raw.assessment_export_rows"
EXPORT_ENTITY = "assessment_export_rows"
SEEN_STATUSES = ("loaded", "quarantined", "rejected")  # a file's content is processed once
# Export files validated together (one GX run for the group): a large backfill is published group
# by group, and a group's stage tables (which become raw partitions) are all that waits for it.
VALIDATION_GROUP = 50


class LoadFailed(Exception):
    """Some batches were rejected or quarantined (the good ones are loaded): someone must look."""


@dataclass
class BatchResult:
    batch_id: int
    source_object: str
    status: str
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    message: str = ""
    failed_rules: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------- batch plumbing


@contextmanager
def _loader_session(url: str, lock_key: str) -> Iterator[psycopg.Connection]:
    """A ``loader`` connection holding the advisory lock of one source object for its lifetime.

    The lock makes one loader at a time per object (a second one waits), and tells a run that any
    batch of that object still ``staging`` belongs to a process that died.
    """
    conn = db.connect(url, role="loader")
    try:
        conn.execute("select pg_advisory_lock(hashtext(%s))", (f"betterwork.load:{lock_key}",))
        conn.commit()
        yield conn
    finally:
        conn.close()  # ends the session, so the lock goes with it


def _abandon_stale(conn: psycopg.Connection, source: str, source_object: str | None) -> list[int]:
    """Mark batches left ``staging`` by a crashed run ``abandoned`` and drop their stage tables."""
    rows = conn.execute(
        """
        select batch_id from audit.load_batches
        where status = 'staging' and source = %s and (%s::text is null or source_object = %s)
        """,
        (source, source_object, source_object),
    ).fetchall()
    for (batch_id,) in rows:
        _drop_stage(conn, batch_id)
        conn.execute(
            """
            update audit.load_batches set status = 'abandoned', finished_at = clock_timestamp(),
                message = 'the run that staged this batch ended before publishing it; nothing reached raw'
            where batch_id = %s
            """,
            (batch_id,),
        )
    conn.commit()
    if rows:
        log.warning("abandoned stale batches %s", [r[0] for r in rows])
    return [r[0] for r in rows]


def _stage_name(batch_id: int, suffix: str = "") -> sql.Composed:
    return sql.Identifier("stage", f"batch_{batch_id}{suffix}")


def _drop_stage(conn: psycopg.Connection, batch_id: int) -> None:
    # CASCADE: a validation view over several stage tables that a crashed run left behind
    conn.execute(
        sql.SQL("drop table if exists {}, {} cascade").format(
            _stage_name(batch_id), _stage_name(batch_id, "_rejects")
        )
    )


def _open_batch(conn: psycopg.Connection, source: str, source_object: str, **extra) -> int:
    cols = ["source", "source_object", "status", *extra]
    (batch_id,) = conn.execute(
        sql.SQL("insert into audit.load_batches ({}) values ({}) returning batch_id").format(
            sql.SQL(", ").join(map(sql.Identifier, cols)), sql.SQL(", ").join(sql.Placeholder() * len(cols))
        ),
        (source, source_object, "staging", *extra.values()),
    ).fetchone()
    conn.commit()
    return batch_id


def _create_rejects_table(conn: psycopg.Connection, batch_id: int) -> None:
    conn.execute(
        sql.SQL(
            "create unlogged table {} "
            "(source_row bigint, raw_text text, reason text not null, row_version text)"
        ).format(_stage_name(batch_id, "_rejects"))
    )


def _reject_whole(conn: psycopg.Connection, batch_id: int, source_object: str, reason: str) -> BatchResult:
    """A file or table that cannot be read at all: recorded in audit and quarantine, nothing staged."""
    conn.rollback()
    _drop_stage(conn, batch_id)
    conn.execute(
        "insert into quarantine.rejected_rows (batch_id, source, source_row, raw_text, reason) "
        "values (%s, %s, null, null, %s)",
        (batch_id, source_object, f"whole source rejected: {reason}"),
    )
    conn.execute(
        """
        update audit.load_batches set status = 'rejected', message = %s, finished_at = clock_timestamp()
        where batch_id = %s
        """,
        (reason, batch_id),
    )
    conn.commit()
    log.error("batch %s (%s) rejected: %s", batch_id, source_object, reason)
    return BatchResult(batch_id, source_object, "rejected", message=reason)


def _publish(
    conn: psycopg.Connection,
    *,
    batch_id: int,
    source_object: str,
    raw_table: str,
    columns: list[str],
    outcome,
    message: str,
    attach: bool = False,
    before_commit=None,
    hold: list[str] | None = None,
    assessment_column: str | None = None,
) -> BatchResult:
    """Step 4: one transaction moves the staged batch to raw (or all of it to quarantine).

    ``attach``: the stage table already has raw's shape and lineage columns; it becomes the raw
    partition ``<raw_table>_b<id>`` instead of being copied. ``hold``: the rules about the batch as
    a whole that failed (default: every failed critical rule of ``outcome``); rows quarantined one
    by one are already in the rejects table. A row version (``row_version``) already in quarantine
    for this source is counted, not copied there again. ``assessment_column`` (exports): the
    stage column whose value goes into ``quarantine.rejected_rows.assessment_id``; the rejects
    table then has an ``assessment_id`` column too.
    """
    started = time.perf_counter()
    stage, rejects = _stage_name(batch_id), _stage_name(batch_id, "_rejects")
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))
    params = {"batch": batch_id, "source": source_object}
    staged = conn.execute(sql.SQL("select count(*) from {}").format(stage)).fetchone()[0]
    with_id = sql.SQL(", assessment_id" if assessment_column else "")
    unparsable = conn.execute(sql.SQL("select count(*) from {}").format(rejects)).fetchone()[0]
    conn.execute(
        sql.SQL(
            "insert into quarantine.rejected_rows "
            "(batch_id, source, source_row, raw_text, reason, row_version{}) "
            "select %(batch)s, %(source)s, source_row, raw_text, reason, row_version{} from {} as r "
            "where r.row_version is null or not exists (select 1 from quarantine.rejected_rows q "
            "where q.source = %(source)s and q.row_version = r.row_version)"
        ).format(with_id, with_id, rejects),
        params,
    )
    quarantined = unparsable
    failed = hold if hold is not None else (outcome.failed_critical if outcome else [])
    if failed:
        reason = "critical expectations failed: " + ", ".join(failed)
        quarantined += conn.execute(
            sql.SQL(
                "insert into quarantine.rejected_rows (batch_id, source, source_row, raw_text, reason{}) "
                "select %(batch)s, %(source)s, s._source_row, "
                "(to_jsonb(s) - '_source_row' - '_batch_id' - '_source' - '_loaded_at')::text, "
                "%(reason)s{} from {} as s"
            ).format(
                with_id,
                sql.SQL(", s.{}").format(sql.Identifier(assessment_column))
                if assessment_column
                else sql.SQL(""),
                stage,
            ),
            {**params, "reason": reason},
        ).rowcount
        status, loaded, message = "quarantined", 0, f"{reason}. {message}".strip()
    else:
        if attach:
            _attach(conn, batch_id, raw_table)
            loaded = staged
        else:
            loaded = conn.execute(
                sql.SQL(
                    "insert into {} ({}, _batch_id, _source, _source_row) "
                    "select {}, %(batch)s, %(source)s, _source_row from {}"
                ).format(sql.SQL(raw_table), cols, cols, stage),
                params,
            ).rowcount
        status = "loaded"
        if before_commit:
            before_commit(conn)
    if outcome and outcome.failed_warnings:
        message = f"{message} warnings: {_warnings(outcome)}".strip()
    conn.execute(
        """
        update audit.load_batches set status = %s, rows_read = %s, rows_loaded = %s, rows_quarantined = %s,
            message = nullif(%s, ''), finished_at = clock_timestamp()
        where batch_id = %s
        """,
        (status, staged + unparsable, loaded, quarantined, message, batch_id),
    )
    _drop_stage(conn, batch_id)
    conn.commit()
    result = BatchResult(
        batch_id, source_object, status, staged + unparsable, loaded, quarantined, message, failed
    )
    result.seconds["publish"] = time.perf_counter() - started
    if failed:
        log.error("batch %s (%s) quarantined: %s", batch_id, source_object, ", ".join(failed))
    return result


def _warnings(outcome) -> str:
    """The failed warnings with how many rows and a few of them (keys), for the batch's message."""
    parts = []
    for c in outcome.checks:
        if c.severity != "warning" or c.success:
            continue
        examples = json.dumps(c.unexpected_values[:3], default=str)
        parts.append(f"{c.expectation} ({c.unexpected_count} rows, e.g. {examples[:300]})")
    return "; ".join(parts)


def analyze(url: str, tables: list[str]) -> None:
    """Fresh planner statistics for raw tables a run changed, before dbt reads them (issue 13).

    Run as the pipeline's login (the tables' owner; ``loader`` may not own them), after the publish
    has committed. A partitioned table's own statistics cover all its partitions.
    """
    if not tables:
        return
    started = time.perf_counter()
    with db.connect(url, autocommit=True) as conn:
        for table in dict.fromkeys(tables):
            conn.execute(sql.SQL("analyze {}").format(sql.SQL(table)))
    log.info("analysed %s in %.2f s", ", ".join(dict.fromkeys(tables)), time.perf_counter() - started)


def _attach(conn: psycopg.Connection, batch_id: int, raw_table: str) -> None:
    """Make ``stage.batch_<id>`` the partition ``<raw_table>_b<id>`` (inside the publish transaction).

    Catalogue changes only: the stage table's ``CHECK (_batch_id = <id>)`` spares ATTACH its scan.
    The stage-only defaults go first (the sequence numbering the rows is dropped with them).
    """
    schema, table = raw_table.split(".")
    partition = f"{table}_b{batch_id}"
    stage = _stage_name(batch_id)
    conn.execute(
        sql.SQL(
            "alter table {} alter column _batch_id drop default, alter column _source drop default, "
            "alter column _source_row drop default"
        ).format(stage)
    )
    conn.execute(sql.SQL("drop sequence if exists {}").format(_stage_name(batch_id, "_row")))
    conn.execute(sql.SQL("alter table {} rename to {}").format(stage, sql.Identifier(partition)))
    conn.execute(
        sql.SQL("alter table {} set schema {}").format(
            sql.Identifier("stage", partition), sql.Identifier(schema)
        )
    )
    conn.execute(
        sql.SQL("alter table {} attach partition {} for values in ({})").format(
            sql.Identifier(schema, table), sql.Identifier(schema, partition), sql.Literal(batch_id)
        )
    )


def _summary(results: list[BatchResult], **extra) -> dict:
    """A small JSON-able dict for task logs and XCom; raises LoadFailed if any batch failed."""
    bad = [r for r in results if r.status in ("rejected", "quarantined")]
    seconds: dict[str, float] = {}
    for r in results:
        for step, value in r.seconds.items():
            seconds[step] = round(seconds.get(step, 0.0) + value, 3)
    summary = {
        **extra,
        "seconds": seconds,
        "batches": len(results),
        "rows_loaded": sum(r.rows_loaded for r in results),
        "rows_quarantined": sum(r.rows_quarantined for r in results),
        "results": [{k: v for k, v in asdict(r).items() if k != "seconds"} for r in results],
    }
    if bad:
        lines = [
            f"batch {r.batch_id} ({r.source_object}) {r.status}: "
            + (", ".join(r.failed_rules) if r.failed_rules else r.message)
            for r in bad
        ]
        raise LoadFailed(f"{len(bad)} of {len(results)} batches not loaded:\n" + "\n".join(lines))
    return summary


# --------------------------------------------------------------------------- assessment exports


def load_assessment_exports(
    warehouse_url: str,
    landing_dir: Path,
    *,
    validate: bool = True,
    limits: extract_files.Limits | None = None,
    min_age_seconds: float | None = None,
    settle_seconds: float | None = None,
) -> dict:
    """Load every new, complete export file in ``landing_dir/assessments`` (one batch per file).

    Files are taken in export order (the date in the name, then modification time) once complete
    (:func:`extract_files.ready_files`), each read once into a private copy that is hashed and
    parsed (:func:`extract_files.land`). A file whose content (sha256) was already processed is
    skipped whatever its name; a second file with the same content in one run is recorded as a
    ``duplicate``. New files are staged in order, validated together in groups of up to
    :data:`VALIDATION_GROUP` files (:func:`include.validate.validate_batches`), then published one
    by one in the same order. Whatever goes wrong with one file (reading, staging, validating,
    publishing) rejects that file alone; a lost connection to the warehouse is not the file's fault
    and is raised. Raises :class:`LoadFailed` at the end, its first line naming what failed, if a
    file was rejected, a batch quarantined or an assessment held (a record of it quarantined).
    """
    from include.config import settings

    cfg = settings()
    limits = limits or extract_files.Limits.from_settings()
    min_age = cfg.landing_min_age_seconds if min_age_seconds is None else min_age_seconds
    settle = cfg.landing_settle_seconds if settle_seconds is None else settle_seconds
    folder = Path(landing_dir) / "assessments"
    results: list[BatchResult] = []
    skipped, gx_ready = 0, None
    with (
        _loader_session(warehouse_url, EXPORTS_SOURCE) as conn,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="land") as lander,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="gx-import") as gx_import,
        tempfile.TemporaryDirectory(prefix="bw-landed-") as workdir,
    ):
        _abandon_stale(conn, EXPORTS_SOURCE, None)
        staged: list[_StagedExport] = []
        paths, waiting = extract_files.ready_files(folder, min_age, settle)
        for path in waiting:
            log.warning("%s: still being written (size or time changed); taken on a later run", path.name)
        this_run: dict[str, BatchResult | _StagedExport] = {}
        # Each file is read once, into a private copy, hashed on the way; the next file is read
        # in a thread while this one is COPY-ed (hashlib and file I/O let go of the GIL).
        landing: Future | None = (
            lander.submit(extract_files.land, paths[0], Path(workdir), limits) if paths else None
        )
        for i, path in enumerate(paths):
            started = time.perf_counter()
            current = landing
            landing = (
                lander.submit(extract_files.land, paths[i + 1], Path(workdir), limits)
                if i + 1 < len(paths)
                else None
            )
            try:
                landed = current.result()
            except extract_files.NotReady as err:
                log.warning("%s; taken on a later run", err)
                continue
            except Exception as err:  # unreadable (permissions, I/O error…): said, tried again next run
                batch_id = _open_batch(conn, EXPORTS_SOURCE, path.name)
                reason = f"the file cannot be read: {err}" if isinstance(err, OSError) else None
                results.append(
                    _reject_whole(conn, batch_id, path.name, reason or _unexpected(err, "reading the file"))
                )
                continue

            def start_gx() -> None:
                nonlocal gx_ready
                if validate and gx_ready is None:
                    # GX's import (~5 s in a fresh task process) goes on while the files are staged
                    from include import validate as validation

                    gx_ready = gx_import.submit(validation.warm_up, warehouse_url, EXPORT_ENTITY)

            try:
                item = _take_landed(conn, landed, this_run, started, start_gx)
            finally:
                landed.discard()
            if item is None:
                skipped += 1
                continue
            if isinstance(item, BatchResult):
                results.append(item)  # rejected whole, or a duplicate
                continue
            staged.append(item)
            if len(staged) == VALIDATION_GROUP:
                results += _validate_and_publish(conn, warehouse_url, staged, gx_ready)
                staged = []
        results += _validate_and_publish(conn, warehouse_url, staged, gx_ready)
        held = _held_assessments(conn, [r.batch_id for r in results if r.status == "loaded"])
    docs_seconds = 0.0
    if gx_ready is not None:
        from include import validate as validation

        started = time.perf_counter()
        validation.build_docs(warehouse_url)  # once per run, not per batch
        docs_seconds = time.perf_counter() - started
    results.sort(key=lambda r: r.batch_id)
    if any(r.status == "loaded" and r.rows_loaded for r in results):
        analyze(warehouse_url, [EXPORT_TABLE])  # the parent: statistics over every partition
    try:
        summary = _summary(results, files_skipped_as_known=skipped)
    except LoadFailed as err:
        raise LoadFailed(_export_failure(results, held) + "\n" + str(err)) from None
    if held:
        raise LoadFailed(_export_failure(results, held))
    summary["files_waiting"] = [p.name for p in waiting]
    summary["seconds"]["data_docs"] = round(docs_seconds, 3)
    if gx_ready is not None:  # GX's import and context, beside the staging (0: done already)
        summary["seconds"]["validate_startup"] = round(gx_ready.result(), 3)
    return summary


HELD_NAMED = 20  # assessments named in a failure message; the rest are counted


def _held_assessments(conn: psycopg.Connection, batch_ids: list[int]) -> dict[str, list[str | None]]:
    """Per loaded file of this run, the assessments (Quest.ID) with a quarantined record (None: not read)."""
    if not batch_ids:
        return {}
    rows = conn.execute(
        """
        select b.source_object, array_agg(distinct r.assessment_id)
        from quarantine.rejected_rows r join audit.load_batches b using (batch_id)
        where r.batch_id = any(%s) and r.source_row is not null
        group by b.batch_id, b.source_object order by b.batch_id
        """,
        (batch_ids,),
    ).fetchall()
    conn.commit()
    return {name: ids for name, ids in rows}


def _export_failure(results: list[BatchResult], held: dict[str, list[str | None]]) -> str:
    """The first line of the run's failure: which files failed and which assessments are held."""
    parts = []
    for status, what in (("rejected", "rejected"), ("quarantined", "quarantined by validation")):
        names = [r.source_object for r in results if r.status == status]
        if names:
            parts.append(f"{len(names)} export file(s) {what}: {', '.join(names)}")
    if held:
        ids = sorted({i for v in held.values() for i in v if i is not None})
        unreadable = any(None in v for v in held.values())
        named = ", ".join(ids[:HELD_NAMED]) + (
            f" and {len(ids) - HELD_NAMED} more" if len(ids) > HELD_NAMED else ""
        )
        parts.append(
            f"{len(ids)} assessment(s) held out of every count (records quarantined"
            f" in {', '.join(held)}): {named or '-'}"
            + ("; some quarantined records have no readable Quest.ID" if unreadable else "")
            + "; see quarantine.rejected_rows, correct the records and export them again"
        )
    return "Assessment exports: " + "; ".join(parts)


@dataclass
class _StagedExport:
    batch_id: int
    path: Path
    report: extract_files.ParseReport
    seconds: dict[str, float]
    message: str = ""


def _transient(conn: psycopg.Connection, err: BaseException) -> bool:
    """A fault of the connection or server (retry later), not of the file."""
    if conn.broken or conn.closed:
        return True
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, psycopg.OperationalError | psycopg.InterfaceError) and not isinstance(
            seen, psycopg.errors.ProgramLimitExceeded
        ):
            return True
        if type(seen).__name__ in ("OperationalError", "InterfaceError", "DisconnectionError"):
            return True  # SQLAlchemy's, under GX
        seen = seen.__cause__ or seen.__context__
    return False


def _unexpected(err: BaseException, doing: str) -> str:
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return (
        f"{doing} failed ({type(err).__name__}: {first[:500]}); nothing of the file was loaded; check the "
        f"file, then {extract_files.FIX}"
    )


def _take_landed(
    conn: psycopg.Connection,
    landed: extract_files.Landed,
    this_run: dict[str, BatchResult | _StagedExport],
    started: float,
    before_staging=lambda: None,
    *,
    source: str = EXPORTS_SOURCE,
    stage=None,
) -> _StagedExport | BatchResult | None:
    """Open the landed file's batch and stage it (committed); None: content already processed.

    ``before_staging`` is called once the file is known to be new and readable (GX's import starts).
    ``source`` and ``stage`` (default: :func:`stage_export`): another file source's batches and its
    staging function, same signature (the survey files, include/load_surveys.py).
    """
    stage = stage or stage_export
    name = landed.path.name
    seen = conn.execute(
        "select 1 from audit.load_batches where source = %s and checksum = %s and status = any(%s)",
        (source, landed.checksum, list(SEEN_STATUSES)),
    ).fetchone()
    conn.commit()
    if seen:
        return None
    extra = {"checksum": landed.checksum, "exported_on": landed.exported_on, "file_encoding": landed.encoding}
    first = this_run.get(landed.checksum)
    if first is not None:
        batch_id = _open_batch(conn, source, name, **extra)
        message = (
            f"same content as {first.path.name if isinstance(first, _StagedExport) else first.source_object}"
            f" (batch {first.batch_id}) in this run: loaded once, this copy skipped"
        )
        conn.execute(
            "update audit.load_batches set status = 'duplicate', message = %s,"
            " finished_at = clock_timestamp() where batch_id = %s",
            (message, batch_id),
        )
        conn.commit()
        log.warning("%s: %s", name, message)
        return BatchResult(batch_id, name, "duplicate", message=message)
    batch_id = _open_batch(conn, source, name, **extra)
    if landed.rejected:
        result = _reject_whole(conn, batch_id, name, landed.rejected)
        this_run[landed.checksum] = result
        return result
    report = extract_files.ParseReport(kind=landed.kind)
    before_staging()
    try:
        stage(conn, batch_id, landed.copy, report, landed=landed)
    except extract_files.FileRejected as err:
        result = _reject_whole(conn, batch_id, name, err.reason)
    except Exception as err:
        if _transient(conn, err):
            raise
        log.exception("%s: staging failed", name)
        result = _reject_whole(conn, batch_id, name, _unexpected(err, "reading and staging the file"))
    else:
        conn.commit()
        notes = []
        if landed.kind == "xlsx" and landed.path.suffix.lower() != ".xlsx":
            notes.append(f"an XLSX workbook under a {landed.path.suffix} name, read as XLSX")
        if landed.encoding and not landed.encoding.startswith("utf-8"):
            notes.append(f"encoding {landed.encoding}, converted to UTF-8")
        if report.extra_columns:
            notes.append(f"extra columns ignored: {', '.join(report.extra_columns)}")
        result = _StagedExport(batch_id, landed.path, report, {"stage": time.perf_counter() - started})
        result.message = "; ".join(notes)
    this_run[landed.checksum] = result
    return result


def _validate_and_publish(
    conn: psycopg.Connection, warehouse_url: str, staged: list[_StagedExport], gx_ready: Future | None
) -> list[BatchResult]:
    """Validate the staged files together, then publish (or quarantine) each, in batch order.

    ``gx_ready``: GX's import, under way in another thread (None: load without validation). If the
    group's validation raises, each file is validated alone; a file whose validation still raises
    is rejected (the others go on).
    """
    if not staged:
        return []
    outcomes: dict = {}
    failures: dict[int, str] = {}
    if gx_ready is not None:
        from include import validate as validation

        gx_ready.result()  # one GX session per process: never built from two threads at once
        tables = {s.batch_id: f"batch_{s.batch_id}" for s in staged}
        try:
            outcomes = validation.validate_batches(warehouse_url, EXPORT_ENTITY, "stage", tables)
        except Exception as err:
            if _transient(conn, err):
                raise
            log.exception("validation of %s files together failed; validating each alone", len(staged))
            for batch_id, table in tables.items():
                try:
                    outcomes.update(
                        validation.validate_batches(warehouse_url, EXPORT_ENTITY, "stage", {batch_id: table})
                    )
                except Exception as alone:
                    if _transient(conn, alone):
                        raise
                    failures[batch_id] = _unexpected(alone, "validating the file")
    results = []
    for item in staged:
        name = item.path.name
        if item.batch_id in failures:
            results.append(_reject_whole(conn, item.batch_id, name, failures[item.batch_id]))
            continue
        outcome = outcomes.get(item.batch_id)
        if outcome is not None:
            item.seconds["validate"] = outcome.seconds
        try:
            result = _publish(
                conn,
                batch_id=item.batch_id,
                source_object=name,
                raw_table=EXPORT_TABLE,
                columns=list(extract_files.CONTRACT_COLUMNS),
                outcome=outcome,
                message=item.message,
                attach=True,
                assessment_column="Quest.ID",
            )
        except Exception as err:
            if _transient(conn, err):
                raise
            log.exception("%s: publishing failed", name)
            results.append(_reject_whole(conn, item.batch_id, name, _unexpected(err, "publishing the batch")))
            continue
        result.seconds.update(item.seconds)
        log.info(
            "batch %s (%s): %s, %s rows loaded, %s quarantined%s",
            item.batch_id,
            name,
            result.status,
            result.rows_loaded,
            result.rows_quarantined,
            "" if item.report.fast else " (parsed row by row)",
        )
        results.append(result)
    return results


def stage_export(
    conn: psycopg.Connection,
    batch_id: int,
    path: Path,
    report: extract_files.ParseReport,
    *,
    landed: extract_files.Landed | None = None,
) -> tuple[int, int]:
    """Stage the file into ``stage.batch_<id>`` (good rows) and ``…_rejects``; not committed.

    ``path``: the file to read (a landed copy: UTF-8 text or a workbook); ``landed``: what
    :func:`extract_files.land` found (the name for lineage and messages, kind, line count).
    Returns (rows staged, rows rejected). Raises :class:`extract_files.FileRejected`.
    """
    name = landed.path if landed else path
    limits = extract_files.Limits.from_settings()
    kind = landed.kind if landed else extract_files.sniff(path)
    if kind == "csv":
        body = extract_files.contract_csv_body(path)
        if body is not None:
            try:
                staged = _stage_csv_fast(conn, batch_id, path, body)
                if (
                    landed is not None
                    and not _one_line_per_record(path, landed.lines, staged)
                    and _maybe_swallowed(conn, batch_id)
                ):
                    # a field holds lines that look like records: the row parser finds where a quote
                    # swallowed them, and rejects the file
                    raise extract_files.NotFastPath("a quoted field holds lines that look like records")
                if staged > limits.max_rows:
                    raise extract_files.too_many_rows(name, limits)
                report.kind, report.fast, report.rows_read = "csv", True, staged
                rejected = _reject_impossible_dates(conn, batch_id)
                _add_batch_constants(conn, batch_id, name.name)
                return staged - rejected, rejected
            except (psycopg.DataError, extract_files.NotFastPath) as err:
                conn.rollback()  # nothing of this attempt remains, not even the stage table
                log.info("%s: COPY refused the file (%s); parsing it row by row", name.name, err)
    counts = _stage_parsed(conn, batch_id, path, report, name=name, kind=kind, limits=limits)
    _add_batch_constants(conn, batch_id, name.name)
    return counts


def _maybe_swallowed(conn: psycopg.Connection, batch_id: int) -> bool:
    """Whether a staged field holds a line break followed by a line with a record's commas, or ends one."""
    width = len(extract_files.CONTRACT_COLUMNS)
    pattern = f"\n([^\n,]*,){{{width - 1}}}|\n$"
    return conn.execute(
        sql.SQL("select exists (select from {} where {})").format(
            _stage_name(batch_id),
            sql.SQL(" or ").join(
                sql.SQL("{} ~ {}").format(sql.Identifier(c), sql.Literal(pattern))
                for c in extract_files.CONTRACT_COLUMNS
            ),
        )
    ).fetchone()[0]


def _one_line_per_record(path: Path, line_breaks: int, records: int) -> bool:
    """Whether the file's physical lines are its header and records, one each (no line break in a field)."""
    with path.open("rb") as f:
        f.seek(-1, 2)
        ends_with_newline = f.read(1) == b"\n"
    return line_breaks + (0 if ends_with_newline else 1) == records + 1


def _create_export_stage(conn: psycopg.Connection, batch_id: int) -> None:
    """``stage.batch_<id>`` shaped as a raw partition (it becomes one), and its rejects table.

    Logged (it becomes raw as it is). Lineage comes from column defaults, so that ``COPY`` of the
    file's bytes fills it with no per-row work in Python: ``_source_row`` from a sequence starting
    at 2 (the header is row 1; ``COPY`` inserts records in file order, so it is the record number,
    as in the row-by-row parser). The CHECK lets ATTACH PARTITION skip its validation scan. The
    batch's constants ``_source`` and ``_loaded_at`` come after the rows (:func:`_add_batch_constants`).
    """
    stage, sequence = _stage_name(batch_id), _stage_name(batch_id, "_row")
    # CACHE: one session draws all values, in order; fewer sequence updates per row.
    conn.execute(sql.SQL("create sequence {} start 2 cache 1000").format(sequence))
    conn.execute(
        sql.SQL(
            "create table {stage} ({cols}, "
            "_batch_id bigint not null default {id} constraint batch check (_batch_id = {id}), "
            "_source_row bigint not null default nextval({seq}))"
        ).format(
            stage=stage,
            cols=sql.SQL(", ").join(
                sql.SQL("{} text").format(sql.Identifier(c)) for c in extract_files.CONTRACT_COLUMNS
            ),
            id=sql.Literal(batch_id),
            seq=sql.Literal(f"stage.batch_{batch_id}_row"),
        )
    )
    conn.execute(sql.SQL("alter sequence {} owned by {}._source_row").format(sequence, stage))
    _create_rejects_table(conn, batch_id)
    conn.execute(
        sql.SQL("alter table {} add column assessment_id text").format(_stage_name(batch_id, "_rejects"))
    )


def _add_batch_constants(conn: psycopg.Connection, batch_id: int, source: str) -> None:
    """``_source`` (the file's name) and ``_loaded_at``: the same for every row of the batch.

    Added once the rows are in, with a constant default, a column costs no row any storage:
    PostgreSQL keeps the value once, in the catalogue, for the rows that were there (its "missing
    value", PostgreSQL 11+). Written into every row by ``COPY``, they were a fifth of the bytes.
    ``_loaded_at`` is the staging transaction's time, as ``now()`` in each row was.
    """
    conn.execute(
        sql.SQL(
            "alter table {} add column _source text not null default {}, "
            "add column _loaded_at timestamptz not null default now()"
        ).format(_stage_name(batch_id), sql.Literal(source))
    )


def _stage_csv_fast(conn: psycopg.Connection, batch_id: int, path: Path, body) -> int:
    """The file's bytes straight into ``COPY … (FORMAT csv)``; returns the records staged.

    ``FORCE_NULL`` makes a quoted empty field NULL as well, like an unquoted one (the row-by-row
    parser does the same). ``FREEZE``: the table is new in this transaction, so its rows can be
    written frozen, sparing raw a later rewrite by VACUUM. Impossible dates are taken out
    afterwards, in SQL (:func:`_reject_impossible_dates`).
    """
    _create_export_stage(conn, batch_id)
    cols = sql.SQL(", ").join(map(sql.Identifier, extract_files.CONTRACT_COLUMNS))
    with conn.cursor() as cur:
        with cur.copy(
            sql.SQL("copy {} ({}) from stdin (format csv, encoding 'UTF8', freeze, force_null ({}))").format(
                _stage_name(batch_id), cols, cols
            )
        ) as copy:
            for block in body:
                copy.write(block)
        return cur.rowcount


def _reject_impossible_dates(conn: psycopg.Connection, batch_id: int) -> int:
    """Move the COPY-ed rows whose ``dd/mm/yyyy`` date is no calendar date to the rejects.

    An export holds a few hundred distinct dates: those are tested, not every row (MATERIALIZED
    keeps the planner from pushing the test below the grouping, onto every row), and rows are
    touched only if one is impossible. A quarantined row's raw text is rebuilt from its fields as
    one CSV record (``stage.csv_record``). Not committed; returns the rows moved.
    """
    stage, date = _stage_name(batch_id), sql.Identifier(extract_files.DATE_COLUMN)
    (impossible,) = conn.execute(
        sql.SQL(
            "with dates as materialized (select {date} as d from {stage} group by 1) "
            "select coalesce(array_agg(d), '{{}}') from dates where stage.impossible_ddmmyyyy(d)"
        ).format(stage=stage, date=date)
    ).fetchone()
    if not impossible:
        return 0
    return conn.execute(
        sql.SQL(
            "with bad as (delete from {stage} where {date} = any(%(dates)s) returning *) "
            "insert into {rejects} (source_row, raw_text, reason, assessment_id) "
            "select _source_row, stage.csv_record(array[{cols}]), "
            "{reason} || quote_literal({date}), nullif(btrim({quest}), '') from bad"
        ).format(
            stage=stage,
            rejects=_stage_name(batch_id, "_rejects"),
            date=date,
            cols=sql.SQL(", ").join(map(sql.Identifier, extract_files.CONTRACT_COLUMNS)),
            quest=sql.Identifier("Quest.ID"),
            reason=sql.Literal(f"impossible date in {extract_files.DATE_COLUMN}: "),
        ),
        {"dates": impossible},
    ).rowcount


def _stage_parsed(
    conn: psycopg.Connection,
    batch_id: int,
    path: Path,
    report: extract_files.ParseReport,
    *,
    name: Path,
    kind: str,
    limits: extract_files.Limits,
) -> tuple[int, int]:
    """Row by row in Python (:func:`extract_files.iter_chunks`): any header order, XLSX, row rejects."""
    _create_export_stage(conn, batch_id)
    columns = [*extract_files.CONTRACT_COLUMNS, "_source_row"]
    copy_rows = sql.SQL("copy {} ({}) from stdin (format csv, freeze)").format(
        _stage_name(batch_id), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    copy_rejects = sql.SQL("copy {} (source_row, raw_text, reason, assessment_id) from stdin").format(
        _stage_name(batch_id, "_rejects")
    )
    staged = rejected = 0
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    with conn.cursor() as cur:
        for chunk in extract_files.iter_chunks(path, report, name=name, kind=kind, limits=limits):
            if chunk.rows:
                buffer.seek(0)
                buffer.truncate()
                writer.writerows(chunk.rows)
                with cur.copy(copy_rows) as copy:
                    copy.write(buffer.getvalue())
                staged += len(chunk.rows)
            if chunk.rejects:
                with cur.copy(copy_rejects) as copy:
                    for r in chunk.rejects:
                        copy.write_row(
                            (r.source_row, r.raw_text.replace("\0", ""), r.reason, r.assessment_id)
                        )
                rejected += len(chunk.rejects)
    return staged, rejected


# --------------------------------------------------------------------------- case management


def load_case_management_table(
    warehouse_url: str, ops_url: str, table: str, *, validate: bool = True
) -> dict:
    """Extract one case-management table incrementally (one batch) and load it.

    Rules about a row (a value outside the contract, a missing value, a change time in the future)
    quarantine that row alone; the rest loads and the watermark moves past it. Rules about the
    batch as a whole (its columns, key uniqueness) hold the batch: every row into quarantine, the
    watermark stays, and :class:`LoadFailed` is raised, as it is when the table cannot be read as
    the contract says (a contract column dropped or renamed, a value of another type).
    """
    spec = extract_ops.spec(table)
    source_object = spec.source_object
    salt = _version_salt()
    with _loader_session(warehouse_url, f"{CM_SOURCE}:{source_object}") as conn:
        _abandon_stale(conn, CM_SOURCE, source_object)
        watermark = extract_ops.current_watermark(conn, spec)
        conn.commit()
        window_from = extract_ops.window_start(watermark)
        batch_id = _open_batch(conn, CM_SOURCE, source_object, watermark_from=window_from)
        started = time.perf_counter()
        try:
            _create_rejects_table(conn, batch_id)
            extracted = extract_ops.stage(conn, ops_url, spec, batch_id, window_from)
        except extract_ops.SourceRejected as err:
            return _summary([_reject_whole(conn, batch_id, source_object, str(err))], table=table)
        except psycopg.DataError as err:
            where = f" ({err.diag.context.strip()})" if err.diag.context else ""
            reason = (
                f"{source_object}: a value does not fit the contract's type: {str(err).splitlines()[0]}"
                f"{where}; table {table} was not loaded (a column's type changed at the source?)"
            )
            return _summary([_reject_whole(conn, batch_id, source_object, reason)], table=table)
        already_loaded, already_quarantined = extract_ops.drop_known(conn, spec, batch_id, salt)
        future = _quarantine_rows(
            conn, batch_id, spec, extract_ops.future_rows(spec, extracted.source_now), salt
        )
        watermark_to = extract_ops.watermark_after(conn, spec, batch_id, window_from, extracted.source_now)
        conn.execute(
            "update audit.load_batches set watermark_to = %s where batch_id = %s", (watermark_to, batch_id)
        )
        conn.commit()
        timings = {"stage": time.perf_counter() - started}
        from include import validate as validation

        if spec.change_columns:
            validation.record_loader_check(
                warehouse_url, batch_id, extract_ops.FUTURE_RULE, "critical", future.keys, future.count
            )
        added = _new_columns(conn, source_object, extracted.unknown_columns)
        if added:  # each column beyond the contract is reported once, in the batch that first saw it
            validation.record_loader_check(
                warehouse_url, batch_id, extract_ops.DRIFT_RULE, "warning", added, len(added)
            )
        outcome, hold, by_rule = None, [], future
        if validate:
            outcome = validation.validate_batch(
                warehouse_url, spec.entity, "stage", f"batch_{batch_id}", batch_id
            )
            timings["validate"] = outcome.seconds
            timings["validate_startup"] = outcome.startup_seconds
            row_rules, hold = validation.split_failures(spec.entity, outcome, _stage_name(batch_id))
            if hold:
                reason = "batch held: critical expectations failed: " + ", ".join(hold)
                _quarantine_rows(conn, batch_id, spec, [(reason, sql.SQL("true"))], salt)
            elif row_rules:
                by_rule = by_rule + _quarantine_rows(
                    conn,
                    batch_id,
                    spec,
                    [(f"critical expectation failed: {rule}", cond) for rule, cond in row_rules],
                    salt,
                )
            validation.build_docs(warehouse_url)
        notes = []
        if by_rule.count:
            notes.append(f"{by_rule.count} rows quarantined alone ({by_rule.summary()})")
        if already_loaded:
            notes.append(f"{already_loaded} row versions re-read in the look-back window were already loaded")
        if already_quarantined:
            notes.append(f"{already_quarantined} row versions re-read were already quarantined")
        if added:
            notes.append(f"warning: {extract_ops.DRIFT_RULE}: new columns not loaded: {', '.join(added)}")
        result = _publish(
            conn,
            batch_id=batch_id,
            source_object=source_object,
            raw_table=spec.raw_table,
            columns=spec.columns,
            outcome=outcome,
            message="; ".join(notes),
            before_commit=lambda c: extract_ops.move_watermark(c, spec, watermark_to, batch_id),
            hold=hold,
        )
        result.seconds.update(timings)
        log.info(
            "batch %s (%s): %s, %s rows loaded, %s quarantined",
            batch_id,
            source_object,
            result.status,
            result.rows_loaded,
            result.rows_quarantined,
        )
        if by_rule.count:
            log.warning("batch %s (%s): %s", batch_id, source_object, notes[0])
    if result.status == "loaded" and result.rows_loaded:
        analyze(warehouse_url, [spec.raw_table])
    purge_quarantine(warehouse_url)
    return _summary([result], table=table, watermark=str(watermark_to))


def _new_columns(conn: psycopg.Connection, source_object: str, unknown: list[str]) -> list[str]:
    """The source's columns beyond the contract that no earlier batch of this table reported."""
    if not unknown:
        return []
    reported = conn.execute(
        "select coalesce(jsonb_agg(distinct c), '[]') from audit.validation_results v "
        "join audit.load_batches b using (batch_id), jsonb_array_elements_text(v.unexpected_values) as c "
        "where b.source_object = %s and v.suite = 'loader' and v.expectation = %s",
        (source_object, extract_ops.DRIFT_RULE),
    ).fetchone()[0]
    conn.commit()
    return [c for c in unknown if c not in reported]


def _version_salt() -> str:
    """The secret mixed into quarantined rows' fingerprints (derived from the pseudonym key)."""
    from include import warehouse
    from include.config import settings

    key = warehouse.pseudonym_key(settings())
    return hmac.new(key, b"quarantine row version", hashlib.sha256).hexdigest()


@dataclass
class _Quarantined:
    """Rows a batch quarantined alone: how many per reason, and a few of their keys."""

    count: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    keys: list[dict] = field(default_factory=list)

    def __add__(self, other: _Quarantined) -> _Quarantined:
        reasons = dict(self.reasons)
        for reason, n in other.reasons.items():
            reasons[reason] = reasons.get(reason, 0) + n
        return _Quarantined(self.count + other.count, reasons, self.keys + other.keys)

    def summary(self) -> str:
        return "; ".join(f"{reason}: {n}" for reason, n in self.reasons.items())


def _quarantine_rows(
    conn: psycopg.Connection, batch_id: int, spec: extract_ops.TableSpec, rules: list, salt: str
) -> _Quarantined:
    """Move the staged rows that break any of ``rules`` ((reason, SQL condition)) to the rejects.

    A row's reason names every rule it breaks. Its raw text is the row as JSON, personal values
    masked (``include.personal_data.mask_record``); its ``row_version`` a keyed fingerprint of the
    whole row (:func:`include.extract_ops.row_version`). Not committed.
    """
    if not rules:
        return _Quarantined()
    from include import personal_data, warehouse
    from include.config import settings

    stage = _stage_name(batch_id)
    reasons = sql.SQL("array_to_string(array_remove(array[{}]::text[], null), '; ')").format(
        sql.SQL(", ").join(
            sql.SQL("case when {} then {} end").format(cond, sql.Literal(reason)) for reason, cond in rules
        )
    )
    broken = sql.SQL(" or ").join(sql.SQL("({})").format(cond) for _, cond in rules)
    rows = conn.execute(
        sql.SQL(
            "delete from {stage} as s where {broken} "
            "returning s._source_row, to_jsonb(s) - '_source_row', {reasons}, {version}"
        ).format(
            stage=stage, broken=broken, reasons=reasons, version=extract_ops.row_version(spec, "s", salt)
        )
    ).fetchall()
    if not rows:
        return _Quarantined()
    key = warehouse.pseudonym_key(settings())
    done = _Quarantined(count=len(rows))
    with conn.cursor().copy(
        sql.SQL("copy {} (source_row, raw_text, reason, row_version) from stdin").format(
            _stage_name(batch_id, "_rejects")
        )
    ) as copy:
        for source_row, record, reason, version in sorted(rows, key=lambda r: r[0]):
            masked = personal_data.mask_record(spec.entity, record, key)
            copy.write_row((source_row, json.dumps(masked, ensure_ascii=False), reason, version))
            done.reasons[reason] = done.reasons.get(reason, 0) + 1
            if len(done.keys) < 5:
                done.keys.append({"_source_row": source_row, **{k: record.get(k) for k in spec.key}})
    return done


def purge_quarantine(url: str) -> int:
    """Delete quarantined rows of personal tables older than ``QUARANTINE_RETENTION_DAYS``."""
    from include import personal_data
    from include.config import settings

    sources = [
        f"public.{e.removeprefix('cm_')}" for e in personal_data.PERSONAL_COLUMNS if e.startswith("cm_")
    ]
    with db.connect(url) as conn:
        purged = conn.execute(
            "delete from quarantine.rejected_rows where source = any(%s) "
            "and rejected_at < now() - make_interval(days => %s)",
            (sources, settings().quarantine_retention_days),
        ).rowcount
    if purged:
        log.info("purged %s quarantined rows of personal tables (retention)", purged)
    return purged
