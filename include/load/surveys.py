"""Survey export files → ``raw.survey_worker_rows`` / ``raw.survey_manager_rows`` (docs/SURVEYS.md).

The same file machinery as the assessment exports, not a second loader: files are found and landed
by :mod:`include.extract.landing` (landing protocol, sha256, limits, encodings), parsed by
:func:`include.extract.chunks.iter_chunks` with the instrument's columns
(:func:`include.extract.surveys.column_spec`; :mod:`include.load.stage_surveys`), taken and
staged by the file sources' shared run (:mod:`include.load.file_batches`), and each file is one
batch of :mod:`include.load`
(``audit.load_batches`` with source ``survey_files``, its checksum, export date and encoding;
the same duplicate and already-loaded rules; rejects and held batches in ``quarantine.rejected_rows``
with their reason; rows read = loaded + quarantined). What differs is only what is survey-specific:

- the instrument comes from the file name (``worker_wave3_2025-02-14.csv``); a name that does not
  say it rejects the file whole, naming it;
- the GX suite is ``expectations/survey_<instrument>_rows.json``; its warnings (answers out of
  range, unknown factory, respondents under 14) are recorded in ``audit.validation_results``, in
  the batch's message and in the run's summary (``warnings``), and the batch loads;
- a worker file holds names and phone numbers: a quarantined record's raw text is replaced by a
  keyed mask of it, and a batch held by a critical rule goes to quarantine with both columns masked.

Publishing copies the staged rows into raw (``insert … select``: survey files are small).
"""

from __future__ import annotations

import logging
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from include.extract import surveys
from include.extract.limits import Limits
from include.load import batches, file_batches
from include.load.file_batches import StagedFile
from include.load.stage_surveys import instrument_of, mask_stage, stage_survey

log = logging.getLogger(__name__)


def load_survey_files(
    warehouse_url: str,
    landing_dir: Path,
    *,
    validate: bool = True,
    limits: Limits | None = None,
    min_age_seconds: float | None = None,
    settle_seconds: float | None = None,
) -> dict:
    """Load every new, complete survey file in ``landing_dir/surveys`` (one batch per file).

    Files are taken in export order (the date in the name) and known by their content: a file
    loaded before loads nothing again, whatever its name. New files are staged, validated (per
    instrument, together) and published one by one. Raises :class:`include.load.LoadFailed`, after
    loading every good file, naming each file rejected or batch quarantined. The summary's
    ``warnings`` lists, per file, the warnings of its suite that found something.
    """
    source = surveys.SOURCE
    with (
        batches.loader_session(warehouse_url, source) as conn,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="land") as lander,
        tempfile.TemporaryDirectory(prefix="bw-surveys-") as workdir,
    ):
        batches.abandon_stale(conn, source, None)
        paths, waiting = file_batches.ready_paths(
            Path(landing_dir) / surveys.FOLDER, min_age_seconds, settle_seconds
        )
        run = _SurveyRun(conn, source, stage_survey, limits or Limits.from_settings(), Path(workdir), lander)
        for path, started, landed in run.landed_files(paths):
            run.take(path, started, landed)
        run.publish_staged(warehouse_url, validate)
    return run.finish(warehouse_url, validate, waiting)


@dataclass
class _SurveyRun(file_batches.FileRun):
    """One run of the survey loader: every file staged first, then validated and published."""

    warnings: list[dict] = field(default_factory=list)  # failed warnings of the published files
    tables: set[str] = field(default_factory=set)  # raw tables that received rows

    def publish_staged(self, warehouse_url: str, validate: bool) -> None:
        """Validate the staged files (per instrument, together), then publish (or reject) each."""
        validating = validate and self.staged
        outcomes, failures = _validate(self.conn, warehouse_url, self.staged) if validating else ({}, {})
        for item in self.staged:
            if item.batch_id in failures:
                reason = failures[item.batch_id]
                self.results.append(batches.reject_whole(self.conn, item.batch_id, item.path.name, reason))
            else:
                self._publish(item, outcomes.get(item.batch_id))

    def _publish(self, item: StagedFile, outcome) -> None:
        instrument = instrument_of(item.path.name)

        def publish() -> batches.BatchResult:
            if outcome is not None and outcome.failed_critical:
                mask_stage(self.conn, item.batch_id, instrument)
            return batches.publish(
                self.conn,
                batch_id=item.batch_id,
                source_object=item.path.name,
                raw_table=surveys.raw_table(instrument),
                columns=list(surveys.raw_columns(instrument)),
                outcome=outcome,
                message=item.message,
            )

        result = file_batches.publish_or_reject(self.conn, item, publish)
        self.results.append(result)
        if result.status == "rejected":
            return
        if result.status == "loaded" and result.rows_loaded:
            self.tables.add(surveys.raw_table(instrument))
        self.warnings += _failed_warnings(item, outcome)

    def finish(self, warehouse_url: str, validate: bool, waiting: list[Path]) -> dict:
        """Data Docs, statistics, the summary; raises LoadFailed naming what failed."""
        if validate and self.staged:
            from include.validate import suites as validation

            validation.build_docs(warehouse_url)
        batches.analyze(warehouse_url, sorted(self.tables))
        results = sorted(self.results, key=lambda r: r.batch_id)
        summary = batches.summary(results, files_skipped_as_known=self.skipped)
        summary["files_waiting"] = [p.name for p in waiting]
        summary["warnings"] = self.warnings
        summary["tables_loaded"] = sorted(self.tables)
        for w in self.warnings:
            log.warning("%s (batch %s): warning %s: %s rows", w["file"], w["batch_id"], w["rule"], w["rows"])
        return summary


def _failed_warnings(item: StagedFile, outcome) -> list[dict]:
    """The warnings of the file's suite that found something, for the run's summary."""
    if outcome is None:
        return []
    return [
        {"file": item.path.name, "batch_id": item.batch_id, "rule": c.expectation, "rows": c.unexpected_count}
        for c in outcome.checks
        if c.severity == "warning" and not c.success
    ]


def _validate(conn: psycopg.Connection, warehouse_url: str, staged: list[StagedFile]) -> tuple[dict, dict]:
    """Each instrument's staged files validated together by its suite: ({batch_id: Outcome},
    {batch_id: why its validation could not run}). If a group's validation raises, each file is
    validated alone; a file whose validation still raises is rejected (the others go on)."""
    from include.validate import suites as validation

    conn.commit()
    outcomes: dict = {}
    failures: dict[int, str] = {}
    for instrument in surveys.INSTRUMENTS:
        entity = surveys.entity(instrument)
        tables = {
            s.batch_id: f"batch_{s.batch_id}" for s in staged if instrument_of(s.path.name) == instrument
        }
        if not tables:
            continue

        def validate(tables: dict[int, str], entity: str = entity) -> dict:
            return validation.validate_batches(warehouse_url, entity, "stage", tables)

        found, failed = file_batches.validate_together_else_alone(conn, tables, validate, f"{entity} files")
        outcomes.update(found)
        failures.update(failed)
    return outcomes, failures
