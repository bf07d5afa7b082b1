"""Survey export files → ``raw.survey_worker_rows`` / ``raw.survey_manager_rows`` (docs/SURVEYS.md).

The same file machinery as the assessment exports, not a second loader: files are found and landed
by :mod:`include.extract.export_files` (landing protocol, sha256, limits, encodings, XLSX readers), parsed
by its :func:`~include.extract.export_files.iter_chunks` with the instrument's columns
(:func:`include.extract.surveys.column_spec`), and each file is one batch of :mod:`include.load`
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

import csv
import io
import logging
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

from include import load
from include.extract import export_files as extract_files
from include.extract import surveys

log = logging.getLogger(__name__)


def _instrument_of(name: str) -> str:
    return surveys.parse_name(name).instrument


def stage_survey(
    conn: psycopg.Connection,
    batch_id: int,
    path: Path,
    report: extract_files.ParseReport,
    *,
    landed: extract_files.Landed | None = None,
) -> tuple[int, int]:
    """Stage one survey file into ``stage.batch_<id>`` and ``…_rejects`` (not committed).

    Same contract as :func:`include.load.stage_export`: raises :class:`extract_files.FileRejected`
    for a file that cannot be loaded at all (its name does not say the instrument, its header lacks
    a required column, …). Returns (rows staged, rows rejected).
    """
    name = landed.path if landed else path
    try:
        instrument = _instrument_of(name.name)
    except surveys.BadName as err:
        raise extract_files.FileRejected(name, str(err)) from None
    columns = surveys.raw_columns(instrument)
    stage = sql.Identifier("stage", f"batch_{batch_id}")
    conn.execute(
        sql.SQL(
            "create table {} ({}, _source_row bigint not null, "
            "_batch_id bigint not null default {} constraint batch check (_batch_id = {}))"
        ).format(
            stage,
            sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in columns),
            sql.Literal(batch_id),
            sql.Literal(batch_id),
        )
    )
    load._create_rejects_table(conn, batch_id)
    copy_rows = sql.SQL("copy {} ({}) from stdin (format csv)").format(
        stage, sql.SQL(", ").join(map(sql.Identifier, [*columns, "_source_row"]))
    )
    copy_rejects = sql.SQL("copy {} (source_row, raw_text, reason) from stdin").format(
        sql.Identifier("stage", f"batch_{batch_id}_rejects")
    )
    mask = _masker(instrument)
    staged = rejected = 0
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    limits = extract_files.Limits.from_settings()
    kind = landed.kind if landed else extract_files.sniff(path)
    with conn.cursor() as cur:
        for chunk in extract_files.iter_chunks(
            path, report, name=name, kind=kind, limits=limits, spec=surveys.column_spec(instrument)
        ):
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
                        copy.write_row((r.source_row, mask(r.raw_text.replace("\0", "")), r.reason))
                rejected += len(chunk.rejects)
    return staged, rejected


def _masker(instrument: str):
    """A quarantined record's raw text: as read, or (worker files: it may hold a name or a phone
    number) a keyed mask of it, so that the same record is recognisable but not readable."""
    if not surveys.PERSONAL[instrument]:
        return lambda text: text
    from include import personal_data, warehouse
    from include.config import settings

    key = warehouse.pseudonym_key(settings())
    return lambda text: personal_data.mask(text, key)


def _mask_stage(conn: psycopg.Connection, batch_id: int, instrument: str) -> None:
    """Mask the personal columns of a staged batch about to be quarantined whole (not committed)."""
    personal = surveys.PERSONAL[instrument]
    if not personal:
        return
    from include import personal_data, warehouse
    from include.config import settings

    key = warehouse.pseudonym_key(settings())
    stage = sql.Identifier("stage", f"batch_{batch_id}")
    for column in personal:
        values = conn.execute(
            sql.SQL("select distinct {} from {} where {} is not null").format(
                sql.Identifier(column), stage, sql.Identifier(column)
            )
        ).fetchall()
        for (value,) in values:
            conn.execute(
                sql.SQL("update {} set {} = %s where {} = %s").format(
                    stage, sql.Identifier(column), sql.Identifier(column)
                ),
                (personal_data.mask(value, key), value),
            )


def load_survey_files(
    warehouse_url: str,
    landing_dir: Path,
    *,
    validate: bool = True,
    limits: extract_files.Limits | None = None,
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
    from include.config import settings

    cfg = settings()
    limits = limits or extract_files.Limits.from_settings()
    min_age = cfg.landing_min_age_seconds if min_age_seconds is None else min_age_seconds
    settle = cfg.landing_settle_seconds if settle_seconds is None else settle_seconds
    folder = Path(landing_dir) / surveys.FOLDER
    results: list[load.BatchResult] = []
    warnings: list[dict] = []
    skipped = 0
    tables: set[str] = set()
    with (
        load._loader_session(warehouse_url, surveys.SOURCE) as conn,
        tempfile.TemporaryDirectory(prefix="bw-surveys-") as workdir,
    ):
        load._abandon_stale(conn, surveys.SOURCE, None)
        paths, waiting = extract_files.ready_files(folder, min_age, settle)
        for path in waiting:
            log.warning("%s: still being written; taken on a later run", path.name)
        this_run: dict = {}
        staged: list = []
        for path in paths:
            started = time.perf_counter()
            try:
                landed = extract_files.land(path, Path(workdir), limits)
            except extract_files.NotReady as err:
                log.warning("%s; taken on a later run", err)
                continue
            except Exception as err:  # unreadable (permissions, I/O error…): said, tried again next run
                batch_id = load._open_batch(conn, surveys.SOURCE, path.name)
                reason = (
                    f"the file cannot be read: {err}"
                    if isinstance(err, OSError)
                    else load._unexpected(err, "reading the file")
                )
                results.append(load._reject_whole(conn, batch_id, path.name, reason))
                continue
            try:
                item = load._take_landed(
                    conn, landed, this_run, started, source=surveys.SOURCE, stage=stage_survey
                )
            finally:
                landed.discard()
            if item is None:
                skipped += 1
            elif isinstance(item, load.BatchResult):
                results.append(item)
            else:
                staged.append(item)
        outcomes, failures = _validate(conn, warehouse_url, staged) if validate and staged else ({}, {})
        for item in staged:
            instrument = _instrument_of(item.path.name)
            if item.batch_id in failures:
                results.append(
                    load._reject_whole(conn, item.batch_id, item.path.name, failures[item.batch_id])
                )
                continue
            outcome = outcomes.get(item.batch_id)
            try:
                if outcome is not None and outcome.failed_critical:
                    _mask_stage(conn, item.batch_id, instrument)
                result = load._publish(
                    conn,
                    batch_id=item.batch_id,
                    source_object=item.path.name,
                    raw_table=surveys.raw_table(instrument),
                    columns=list(surveys.raw_columns(instrument)),
                    outcome=outcome,
                    message=item.message,
                )
            except Exception as err:
                if load._transient(conn, err):
                    raise
                log.exception("%s: publishing failed", item.path.name)
                reason = load._unexpected(err, "publishing the batch")
                results.append(load._reject_whole(conn, item.batch_id, item.path.name, reason))
                continue
            result.seconds.update(item.seconds)
            results.append(result)
            if result.status == "loaded" and result.rows_loaded:
                tables.add(surveys.raw_table(instrument))
            if outcome is not None:
                warnings += [
                    {
                        "file": item.path.name,
                        "batch_id": item.batch_id,
                        "rule": c.expectation,
                        "rows": c.unexpected_count,
                    }
                    for c in outcome.checks
                    if c.severity == "warning" and not c.success
                ]
    if validate and staged:
        from include.validate import suites as validation

        validation.build_docs(warehouse_url)
    load.analyze(warehouse_url, sorted(tables))
    results.sort(key=lambda r: r.batch_id)
    summary = load._summary(results, files_skipped_as_known=skipped)
    summary["files_waiting"] = [p.name for p in waiting]
    summary["warnings"] = warnings
    summary["tables_loaded"] = sorted(tables)
    for w in warnings:
        log.warning("%s (batch %s): warning %s: %s rows", w["file"], w["batch_id"], w["rule"], w["rows"])
    return summary


def _validate(conn: psycopg.Connection, warehouse_url: str, staged: list) -> tuple[dict, dict]:
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
            s.batch_id: f"batch_{s.batch_id}" for s in staged if _instrument_of(s.path.name) == instrument
        }
        if not tables:
            continue
        try:
            outcomes.update(validation.validate_batches(warehouse_url, entity, "stage", tables))
        except Exception as err:
            if load._transient(conn, err):
                raise
            log.exception(
                "validation of %s %s files together failed; validating each alone", len(tables), entity
            )
            for batch_id, table in tables.items():
                try:
                    outcomes.update(
                        validation.validate_batches(warehouse_url, entity, "stage", {batch_id: table})
                    )
                except Exception as alone:
                    if load._transient(conn, alone):
                        raise
                    failures[batch_id] = load._unexpected(alone, "validating the file")
    return outcomes, failures
