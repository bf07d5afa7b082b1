"""What every file source shares (export files, survey files): one batch per landed file.

A run of a file source's loader (:class:`FileRun`) lands each complete file of its folder once
(:func:`include.extract.landing.land`, the next file read in a thread while this one is staged),
skips content processed before, records a second copy of one file in the same run as a
``duplicate``, stages each new file with the source's staging function and rejects whatever cannot
be read. The source's entry point (:mod:`include.load.exports`, :mod:`include.load.surveys`)
validates and publishes what was staged, with :func:`validate_together_else_alone` and
:func:`publish_or_reject`. Whatever goes wrong with one file rejects that file alone; a lost
connection to the warehouse is not the file's fault and is raised (the task is retried).
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from include.extract import landing
from include.extract.chunks import Chunk, ParseReport
from include.extract.limits import Limits
from include.extract.rejects import FIX, FileRejected, Reject
from include.load import batches

log = logging.getLogger(__name__)

SEEN_STATUSES = ("loaded", "quarantined", "rejected")  # a file's content is processed once


@dataclass
class StagedFile:
    """A file staged in its batch, on its way to validation and publish."""

    batch_id: int
    path: Path
    report: ParseReport
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
        f"file, then {FIX}"
    )


def ready_paths(
    folder: Path, min_age_seconds: float | None, settle_seconds: float | None
) -> tuple[list[Path], list[Path]]:
    """(complete files, files still being written) of ``folder`` (:func:`landing.ready_files`).

    ``None``: the setting's value (``LANDING_MIN_AGE_SECONDS``, ``LANDING_SETTLE_SECONDS``).
    """
    from include.config import settings

    cfg = settings()
    min_age = cfg.landing_min_age_seconds if min_age_seconds is None else min_age_seconds
    settle = cfg.landing_settle_seconds if settle_seconds is None else settle_seconds
    paths, waiting = landing.ready_files(folder, min_age, settle)
    for path in waiting:
        log.warning("%s: still being written (size or time changed); taken on a later run", path.name)
    return paths, waiting


@dataclass
class FileRun:
    """One run of a file source's loader: its connection, its landing and what it has done so far.

    ``stage(conn, batch_id, path, report, *, landed)`` stages one landed file (not committed) and
    raises :class:`FileRejected` for a file that cannot be loaded at all.
    """

    conn: psycopg.Connection
    source: str  # audit.load_batches.source
    stage: Callable
    limits: Limits
    workdir: Path
    lander: ThreadPoolExecutor  # reads the next file while this one is staged
    results: list[batches.BatchResult] = field(default_factory=list)
    staged: list[StagedFile] = field(default_factory=list)
    this_run: dict = field(default_factory=dict)  # checksum -> its batch (duplicates in one run)
    skipped: int = 0  # files whose content was processed before

    def landed_files(self, paths: list[Path]) -> Iterator[tuple[Path, float, landing.Landed | Exception]]:
        """Each file read once into a private copy, hashed on the way (or the error reading it).

        The next file is read in a thread while this one is COPY-ed (hashlib and file I/O let go of
        the GIL). A file still being written is left for a later run.
        """
        land = landing.land
        pending = self.lander.submit(land, paths[0], self.workdir, self.limits) if paths else None
        for i, path in enumerate(paths):
            started = time.perf_counter()
            current = pending
            if i + 1 < len(paths):
                pending = self.lander.submit(land, paths[i + 1], self.workdir, self.limits)
            try:
                landed = current.result()
            except landing.NotReady as err:
                log.warning("%s; taken on a later run", err)
                continue
            except Exception as err:  # unreadable (permissions, I/O error…): said, tried again next run
                landed = err
            yield path, started, landed

    def take(
        self, path: Path, started: float, landed: landing.Landed | Exception, before_staging=lambda: None
    ) -> StagedFile | None:
        """Stage one landed file (added to ``staged`` and returned), or reject or skip it (None)."""
        if isinstance(landed, Exception):
            batch_id = batches.open_batch(self.conn, self.source, path.name)
            reason = f"the file cannot be read: {landed}" if isinstance(landed, OSError) else None
            reason = reason or unexpected(landed, "reading the file")
            self.results.append(batches.reject_whole(self.conn, batch_id, path.name, reason))
            return None
        try:
            item = take_landed(
                self.conn, landed, self.this_run, started, self.source, self.stage, before_staging
            )
        finally:
            landed.discard()
        if item is None:
            self.skipped += 1
        elif isinstance(item, batches.BatchResult):
            self.results.append(item)  # rejected whole, or a duplicate
        else:
            self.staged.append(item)
            return item
        return None


def take_landed(
    conn: psycopg.Connection,
    landed: landing.Landed,
    this_run: dict[str, batches.BatchResult | StagedFile],
    started: float,
    source: str,
    stage: Callable,
    before_staging=lambda: None,
) -> StagedFile | batches.BatchResult | None:
    """Open the landed file's batch and stage it (committed); None: content already processed.

    ``before_staging`` is called once the file is known to be new and readable (GX's import starts).
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
        result = _stage(conn, batch_id, landed, started, stage)
    this_run[landed.checksum] = result
    return result


def _duplicate(conn: psycopg.Connection, batch_id: int, name: str, first) -> batches.BatchResult:
    """A second file with the content of one already taken in this run: recorded, not loaded."""
    first_name = first.path.name if isinstance(first, StagedFile) else first.source_object
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
    conn: psycopg.Connection, batch_id: int, landed: landing.Landed, started: float, stage
) -> StagedFile | batches.BatchResult:
    """Stage the landed file (committed), or reject it whole whatever goes wrong (but a lost connection)."""
    name = landed.path.name
    report = ParseReport(kind=landed.kind)
    try:
        stage(conn, batch_id, landed.copy, report, landed=landed)
    except FileRejected as err:
        return batches.reject_whole(conn, batch_id, name, err.reason)
    except Exception as err:
        if transient(conn, err):
            raise
        log.exception("%s: staging failed", name)
        return batches.reject_whole(conn, batch_id, name, unexpected(err, "reading and staging the file"))
    conn.commit()
    result = StagedFile(batch_id, landed.path, report, {"stage": time.perf_counter() - started})
    result.message = "; ".join(_staging_notes(landed, report))
    return result


def _staging_notes(landed: landing.Landed, report: ParseReport) -> list[str]:
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


def copy_chunks(
    conn: psycopg.Connection,
    chunks: Iterable[Chunk],
    copy_rows: sql.Composable,
    copy_rejects: sql.Composable,
    reject_row: Callable[[Reject], tuple],
) -> tuple[int, int]:
    """Parsed chunks into a stage table (``copy_rows``, CSV) and its rejects (``copy_rejects``, one
    row per reject from ``reject_row``); not committed. Returns (rows staged, rows rejected)."""
    staged = rejected = 0
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    with conn.cursor() as cur:
        for chunk in chunks:
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
                        copy.write_row(reject_row(r))
                rejected += len(chunk.rejects)
    return staged, rejected


def validate_together_else_alone(
    conn: psycopg.Connection, tables: dict[int, str], validate: Callable[[dict[int, str]], dict], what: str
) -> tuple[dict, dict[int, str]]:
    """(outcomes by batch id, why validating a file failed by batch id) of ``validate(tables)``.

    If validating the files together raises, each is validated alone; a file whose validation still
    raises has its reason in the second dict (the others go on). A lost connection is raised.
    """
    try:
        return validate(tables), {}
    except Exception as err:
        if transient(conn, err):
            raise
        log.exception("validation of %s %s together failed; validating each alone", len(tables), what)
    outcomes, failures = {}, {}
    for batch_id, table in tables.items():
        try:
            outcomes.update(validate({batch_id: table}))
        except Exception as alone:
            if transient(conn, alone):
                raise
            failures[batch_id] = unexpected(alone, "validating the file")
    return outcomes, failures


def publish_or_reject(
    conn: psycopg.Connection, item: StagedFile, publish: Callable[[], batches.BatchResult]
) -> batches.BatchResult:
    """``publish()`` the staged file, or reject it whole if that fails (but for a lost connection)."""
    try:
        result = publish()
    except Exception as err:
        if transient(conn, err):
            raise
        log.exception("%s: publishing failed", item.path.name)
        reason = unexpected(err, "publishing the batch")
        return batches.reject_whole(conn, item.batch_id, item.path.name, reason)
    result.seconds.update(item.seconds)
    return result
