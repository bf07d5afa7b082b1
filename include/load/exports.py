"""Entry point of the assessment exports: land, stage, validate together, publish each file.

Whatever goes wrong with one file rejects that file alone (:mod:`include.load.batches`); a lost
connection to the warehouse is not the file's fault and is raised (the task is retried).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from include.extract import export_files as extract_files
from include.load import batches, stage_exports

log = logging.getLogger(__name__)

SEEN_STATUSES = ("loaded", "quarantined", "rejected")  # a file's content is processed once
# Export files validated together (one GX run for the group): a large backfill is published group
# by group, and a group's stage tables (which become raw partitions) are all that waits for it.


VALIDATION_GROUP = 50


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
    :data:`VALIDATION_GROUP` files (:func:`include.validate.suites.validate_batches`), then published one
    by one in the same order. Whatever goes wrong with one file (reading, staging, validating,
    publishing) rejects that file alone; a lost connection to the warehouse is not the file's fault
    and is raised. Raises :class:`~include.load.batches.LoadFailed` at the end, its first line
    naming what failed, if a file was rejected, a batch quarantined or an assessment held (a record
    of it quarantined).
    """
    from include.config import settings

    cfg = settings()
    min_age = cfg.landing_min_age_seconds if min_age_seconds is None else min_age_seconds
    settle = cfg.landing_settle_seconds if settle_seconds is None else settle_seconds
    with (
        batches.loader_session(warehouse_url, stage_exports.EXPORTS_SOURCE) as conn,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="land") as lander,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="gx-import") as gx_import,
        tempfile.TemporaryDirectory(prefix="bw-landed-") as workdir,
    ):
        batches.abandon_stale(conn, stage_exports.EXPORTS_SOURCE, None)
        paths, waiting = extract_files.ready_files(Path(landing_dir) / "assessments", min_age, settle)
        for path in waiting:
            log.warning("%s: still being written (size or time changed); taken on a later run", path.name)
        run = _ExportRun(
            conn, warehouse_url, validate, limits or extract_files.Limits.from_settings(), Path(workdir)
        )
        run.lander, run.gx_import = lander, gx_import
        for path, started, landed in run.landed_files(paths):
            run.take(path, started, landed)
        run.publish_staged()
        held = held_assessments(conn, [r.batch_id for r in run.results if r.status == "loaded"])
    summary = run.finish(held)
    summary["files_waiting"] = [p.name for p in waiting]
    return summary


@dataclass
class _ExportRun:
    """One run of the export loader: its connection, its threads and what it has done so far."""

    conn: psycopg.Connection
    warehouse_url: str
    validate: bool
    limits: extract_files.Limits
    workdir: Path
    lander: ThreadPoolExecutor | None = None  # reads the next file while this one is COPY-ed
    gx_import: ThreadPoolExecutor | None = None  # imports GX while the files are staged
    gx_ready: Future | None = None
    results: list[batches.BatchResult] = field(default_factory=list)
    staged: list[StagedExport] = field(default_factory=list)
    this_run: dict = field(default_factory=dict)  # checksum -> its batch (duplicates in one run)
    skipped: int = 0  # files whose content was processed before

    def landed_files(
        self, paths: list[Path]
    ) -> Iterator[tuple[Path, float, extract_files.Landed | Exception]]:
        """Each file read once into a private copy, hashed on the way (or the error reading it).

        The next file is read in a thread while this one is COPY-ed (hashlib and file I/O let go of
        the GIL). A file still being written is left for a later run.
        """
        land = extract_files.land
        landing = self.lander.submit(land, paths[0], self.workdir, self.limits) if paths else None
        for i, path in enumerate(paths):
            started = time.perf_counter()
            current = landing
            if i + 1 < len(paths):
                landing = self.lander.submit(land, paths[i + 1], self.workdir, self.limits)
            try:
                landed = current.result()
            except extract_files.NotReady as err:
                log.warning("%s; taken on a later run", err)
                continue
            except Exception as err:  # unreadable (permissions, I/O error…): said, tried again next run
                landed = err
            yield path, started, landed

    def take(self, path: Path, started: float, landed: extract_files.Landed | Exception) -> None:
        """Stage one landed file (or reject it); publish the group once it is full."""
        if isinstance(landed, Exception):
            batch_id = batches.open_batch(self.conn, stage_exports.EXPORTS_SOURCE, path.name)
            reason = f"the file cannot be read: {landed}" if isinstance(landed, OSError) else None
            reason = reason or unexpected(landed, "reading the file")
            self.results.append(batches.reject_whole(self.conn, batch_id, path.name, reason))
            return
        try:
            item = take_landed(self.conn, landed, self.this_run, started, self.start_gx)
        finally:
            landed.discard()
        if item is None:
            self.skipped += 1
        elif isinstance(item, batches.BatchResult):
            self.results.append(item)  # rejected whole, or a duplicate
        else:
            self.staged.append(item)
            if len(self.staged) == VALIDATION_GROUP:
                self.publish_staged()

    def start_gx(self) -> None:
        """GX's import (~5 s in a fresh task process) goes on while the files are staged."""
        if self.validate and self.gx_ready is None:
            from include.validate import suites as validation

            entity = stage_exports.EXPORT_ENTITY
            self.gx_ready = self.gx_import.submit(validation.warm_up, self.warehouse_url, entity)

    def publish_staged(self) -> None:
        self.results += validate_and_publish(self.conn, self.warehouse_url, self.staged, self.gx_ready)
        self.staged = []

    def finish(self, held: dict[str, list[str | None]]) -> dict:
        """Data Docs once for the run, statistics, the summary; raises LoadFailed naming what failed."""
        docs_seconds = 0.0
        if self.gx_ready is not None:
            from include.validate import suites as validation

            started = time.perf_counter()
            validation.build_docs(self.warehouse_url)  # once per run, not per batch
            docs_seconds = time.perf_counter() - started
        results = sorted(self.results, key=lambda r: r.batch_id)
        if any(r.status == "loaded" and r.rows_loaded for r in results):
            # the partitioned parent: its statistics cover every partition
            batches.analyze(self.warehouse_url, [stage_exports.EXPORT_TABLE])
        try:
            summary = batches.summary(results, files_skipped_as_known=self.skipped)
        except batches.LoadFailed as err:
            raise batches.LoadFailed(export_failure(results, held) + "\n" + str(err)) from None
        if held:
            raise batches.LoadFailed(export_failure(results, held))
        summary["seconds"]["data_docs"] = round(docs_seconds, 3)
        if self.gx_ready is not None:  # GX's import and context, beside the staging (0: done already)
            summary["seconds"]["validate_startup"] = round(self.gx_ready.result(), 3)
        return summary


HELD_NAMED = 20  # assessments named in a failure message; the rest are counted


def held_assessments(conn: psycopg.Connection, batch_ids: list[int]) -> dict[str, list[str | None]]:
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


def export_failure(results: list[batches.BatchResult], held: dict[str, list[str | None]]) -> str:
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
class StagedExport:
    batch_id: int
    path: Path
    report: extract_files.ParseReport
    seconds: dict[str, float]
    message: str = ""


def transient(conn: psycopg.Connection, err: BaseException) -> bool:
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


def unexpected(err: BaseException, doing: str) -> str:
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return (
        f"{doing} failed ({type(err).__name__}: {first[:500]}); nothing of the file was loaded; check the "
        f"file, then {extract_files.FIX}"
    )


def take_landed(
    conn: psycopg.Connection,
    landed: extract_files.Landed,
    this_run: dict[str, batches.BatchResult | StagedExport],
    started: float,
    before_staging=lambda: None,
    *,
    source: str = stage_exports.EXPORTS_SOURCE,
    stage=None,
) -> StagedExport | batches.BatchResult | None:
    """Open the landed file's batch and stage it (committed); None: content already processed.

    ``before_staging`` is called once the file is known to be new and readable (GX's import starts).
    ``source`` and ``stage`` (default: :func:`~include.load.stage_exports.stage_export`): another
    file source's batches and its staging function, same signature.
    """
    seen = conn.execute(
        "select 1 from audit.load_batches where source = %s and checksum = %s and status = any(%s)",
        (source, landed.checksum, list(SEEN_STATUSES)),
    ).fetchone()
    conn.commit()
    if seen:
        return None
    extra = {"checksum": landed.checksum, "exported_on": landed.exported_on, "file_encoding": landed.encoding}
    batch_id = batches.open_batch(conn, source, landed.path.name, **extra)
    first = this_run.get(landed.checksum)
    if first is not None:
        return _duplicate(conn, batch_id, landed.path.name, first)
    if landed.rejected:
        result = batches.reject_whole(conn, batch_id, landed.path.name, landed.rejected)
    else:
        before_staging()
        result = _stage(conn, batch_id, landed, started, stage or stage_exports.stage_export)
    this_run[landed.checksum] = result
    return result


def _duplicate(conn: psycopg.Connection, batch_id: int, name: str, first) -> batches.BatchResult:
    """A second file with the content of one already taken in this run: recorded, not loaded."""
    first_name = first.path.name if isinstance(first, StagedExport) else first.source_object
    message = (
        f"same content as {first_name} (batch {first.batch_id}) in this run: loaded once, this copy skipped"
    )
    conn.execute(
        "update audit.load_batches set status = 'duplicate', message = %s,"
        " finished_at = clock_timestamp() where batch_id = %s",
        (message, batch_id),
    )
    conn.commit()
    log.warning("%s: %s", name, message)
    return batches.BatchResult(batch_id, name, "duplicate", message=message)


def _stage(
    conn: psycopg.Connection, batch_id: int, landed: extract_files.Landed, started: float, stage
) -> StagedExport | batches.BatchResult:
    """Stage the landed file (committed), or reject it whole whatever goes wrong (but a lost connection)."""
    name = landed.path.name
    report = extract_files.ParseReport(kind=landed.kind)
    try:
        stage(conn, batch_id, landed.copy, report, landed=landed)
    except extract_files.FileRejected as err:
        return batches.reject_whole(conn, batch_id, name, err.reason)
    except Exception as err:
        if transient(conn, err):
            raise
        log.exception("%s: staging failed", name)
        return batches.reject_whole(conn, batch_id, name, unexpected(err, "reading and staging the file"))
    conn.commit()
    result = StagedExport(batch_id, landed.path, report, {"stage": time.perf_counter() - started})
    result.message = "; ".join(_staging_notes(landed, report))
    return result


def _staging_notes(landed: extract_files.Landed, report: extract_files.ParseReport) -> list[str]:
    """What the batch's message says about how the file was read."""
    notes = []
    if landed.kind == "xlsx" and landed.path.suffix.lower() != ".xlsx":
        notes.append(f"an XLSX workbook under a {landed.path.suffix} name, read as XLSX")
    if landed.encoding and not landed.encoding.startswith("utf-8"):
        notes.append(f"encoding {landed.encoding}, converted to UTF-8")
    if report.sheet:
        notes.append(f"worksheet {report.sheet!r} read (the workbook has {report.sheets} sheets)")
    if report.extra_columns:
        notes.append(f"extra columns ignored: {', '.join(report.extra_columns)}")
    return notes


def validate_and_publish(
    conn: psycopg.Connection, warehouse_url: str, staged: list[StagedExport], gx_ready: Future | None
) -> list[batches.BatchResult]:
    """Validate the staged files together, then publish (or quarantine) each, in batch order.

    ``gx_ready``: GX's import, under way in another thread (None: load without validation). If the
    group's validation raises, each file is validated alone; a file whose validation still raises
    is rejected (the others go on).
    """
    if not staged:
        return []
    outcomes, failures = _validate_group(conn, warehouse_url, staged, gx_ready)
    results = []
    for item in staged:
        if item.batch_id in failures:
            results.append(batches.reject_whole(conn, item.batch_id, item.path.name, failures[item.batch_id]))
        else:
            results.append(_publish_file(conn, item, outcomes.get(item.batch_id)))
    return results


def _validate_group(
    conn: psycopg.Connection, warehouse_url: str, staged: list[StagedExport], gx_ready: Future | None
) -> tuple[dict, dict[int, str]]:
    """(outcomes by batch id, why validating a file failed by batch id): together, else one by one."""
    if gx_ready is None:
        return {}, {}
    from include.validate import suites as validation

    gx_ready.result()  # one GX session per process: never built from two threads at once
    entity = stage_exports.EXPORT_ENTITY
    tables = {s.batch_id: f"batch_{s.batch_id}" for s in staged}
    try:
        return validation.validate_batches(warehouse_url, entity, "stage", tables), {}
    except Exception as err:
        if transient(conn, err):
            raise
        log.exception("validation of %s files together failed; validating each alone", len(staged))
    outcomes, failures = {}, {}
    for batch_id, table in tables.items():
        try:
            outcomes.update(validation.validate_batches(warehouse_url, entity, "stage", {batch_id: table}))
        except Exception as alone:
            if transient(conn, alone):
                raise
            failures[batch_id] = unexpected(alone, "validating the file")
    return outcomes, failures


def _publish_file(conn: psycopg.Connection, item: StagedExport, outcome) -> batches.BatchResult:
    """Quarantine the rows that break a row rule, then publish the file (or reject it if that fails)."""
    name = item.path.name
    if outcome is not None:
        item.seconds["validate"] = outcome.seconds
    try:
        hold, note = stage_exports.quarantine_broken_rows(conn, item.batch_id, outcome)
        result = batches.publish(
            conn,
            batch_id=item.batch_id,
            source_object=name,
            raw_table=stage_exports.EXPORT_TABLE,
            columns=list(extract_files.CONTRACT_COLUMNS),
            outcome=outcome,
            message="; ".join(m for m in (note, item.message) if m),
            attach=True,
            hold=hold,
            assessment_column="Quest.ID",
        )
    except Exception as err:
        if transient(conn, err):
            raise
        log.exception("%s: publishing failed", name)
        return batches.reject_whole(conn, item.batch_id, name, unexpected(err, "publishing the batch"))
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
    return result
