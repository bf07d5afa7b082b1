"""Entry point of the assessment exports: land, stage, validate together, publish each file.

Landing, staging and the rejects of a file are shared with the survey files
(:mod:`include.load.file_batches`); what is the exports' own is here: GX imported while the files
are staged, files validated in groups, rows quarantined alone, assessments held.
"""

from __future__ import annotations

import logging
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psycopg

from include.extract.columns import CONTRACT_COLUMNS
from include.extract.limits import Limits
from include.load import batches, file_batches, stage_exports
from include.load.file_batches import StagedFile

log = logging.getLogger(__name__)

# Export files validated together (one GX run for the group): a large backfill is published group
# by group, and a group's stage tables (which become raw partitions) are all that waits for it.
VALIDATION_GROUP = 50


def load_assessment_exports(
    warehouse_url: str,
    landing_dir: Path,
    *,
    validate: bool = True,
    limits: Limits | None = None,
    min_age_seconds: float | None = None,
    settle_seconds: float | None = None,
) -> dict:
    """Load every new, complete export file in ``landing_dir/assessments`` (one batch per file).

    Files are taken in export order (the date in the name, then modification time) once complete
    (:func:`landing.ready_files`), each read once into a private copy that is hashed and
    parsed (:func:`landing.land`). A file whose content (sha256) was already processed is
    skipped whatever its name; a second file with the same content in one run is recorded as a
    ``duplicate``. New files are staged in order, validated together in groups of up to
    :data:`VALIDATION_GROUP` files (:func:`include.validate.suites.validate_batches`), then published one
    by one in the same order. Whatever goes wrong with one file (reading, staging, validating,
    publishing) rejects that file alone; a lost connection to the warehouse is not the file's fault
    and is raised. Raises :class:`~include.load.batches.LoadFailed` at the end, its first line
    naming what failed, if a file was rejected, a batch quarantined or an assessment held (a record
    of it quarantined).
    """
    source = stage_exports.EXPORTS_SOURCE
    with (
        batches.loader_session(warehouse_url, source) as conn,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="land") as lander,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="gx-import") as gx_import,
        tempfile.TemporaryDirectory(prefix="bw-landed-") as workdir,
    ):
        batches.abandon_stale(conn, source, None)
        paths, waiting = file_batches.ready_paths(
            Path(landing_dir) / "assessments", min_age_seconds, settle_seconds
        )
        run = _ExportRun(
            conn, source, stage_exports.stage_export, limits or Limits.from_settings(), Path(workdir), lander
        )
        run.warehouse_url, run.validate, run.gx_import = warehouse_url, validate, gx_import
        for path, started, landed in run.landed_files(paths):
            run.take(path, started, landed)
        run.publish_staged()
        held = held_assessments(conn, [r.batch_id for r in run.results if r.status == "loaded"])
    summary = run.finish(held)
    summary["files_waiting"] = [p.name for p in waiting]
    return summary


@dataclass
class _ExportRun(file_batches.FileRun):
    """One run of the export loader: GX imported beside the staging, files published by group."""

    warehouse_url: str = ""
    validate: bool = True
    gx_import: ThreadPoolExecutor | None = None  # imports GX while the files are staged
    gx_ready: Future | None = None

    def take(self, path: Path, started: float, landed, before_staging=None) -> StagedFile | None:
        """Stage one landed file (or reject it); publish the group once it is full."""
        item = super().take(path, started, landed, self.start_gx)
        if len(self.staged) == VALIDATION_GROUP:
            self.publish_staged()
        return item

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


def validate_and_publish(
    conn: psycopg.Connection, warehouse_url: str, staged: list[StagedFile], gx_ready: Future | None
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
    conn: psycopg.Connection, warehouse_url: str, staged: list[StagedFile], gx_ready: Future | None
) -> tuple[dict, dict[int, str]]:
    """(outcomes by batch id, why validating a file failed by batch id): together, else one by one."""
    if gx_ready is None:
        return {}, {}
    from include.validate import suites as validation

    gx_ready.result()  # one GX session per process: never built from two threads at once
    entity = stage_exports.EXPORT_ENTITY
    tables = {s.batch_id: f"batch_{s.batch_id}" for s in staged}

    def validate(tables: dict[int, str]) -> dict:
        return validation.validate_batches(warehouse_url, entity, "stage", tables)

    return file_batches.validate_together_else_alone(conn, tables, validate, "files")


def _publish_file(conn: psycopg.Connection, item: StagedFile, outcome) -> batches.BatchResult:
    """Quarantine the rows that break a row rule, then publish the file (or reject it if that fails)."""
    if outcome is not None:
        item.seconds["validate"] = outcome.seconds

    def publish() -> batches.BatchResult:
        hold, note = stage_exports.quarantine_broken_rows(conn, item.batch_id, outcome)
        return batches.publish(
            conn,
            batch_id=item.batch_id,
            source_object=item.path.name,
            raw_table=stage_exports.EXPORT_TABLE,
            columns=list(CONTRACT_COLUMNS),
            outcome=outcome,
            message="; ".join(m for m in (note, item.message) if m),
            attach=True,
            hold=hold,
            assessment_column="Quest.ID",
        )

    result = file_batches.publish_or_reject(conn, item, publish)
    if result.status == "rejected":
        return result
    log.info(
        "batch %s (%s): %s, %s rows loaded, %s quarantined%s",
        item.batch_id,
        item.path.name,
        result.status,
        result.rows_loaded,
        result.rows_quarantined,
        "" if item.report.fast else " (parsed row by row)",
    )
    return result
