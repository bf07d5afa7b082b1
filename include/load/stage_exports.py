"""Export files into ``stage.batch_<id>``: PostgreSQL's ``COPY`` of the bytes, or the row parser.

Beside :mod:`include.load.stage_case_management`. :func:`stage_export` stages a landed file (good
rows into the stage table, which is shaped as a raw partition; records that cannot be parsed, or
hold an impossible date, into its rejects); after validation, :func:`quarantine_broken_rows` moves
the rows that break a critical rule about a row to the rejects, kept whole, so that the rest of
the file loads and their assessments are held downstream (docs/LOADING.md).
"""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg
from psycopg import sql

from include import contract
from include.extract import landing
from include.extract.chunks import ParseReport, iter_chunks
from include.extract.columns import CONTRACT_COLUMNS, DATE_COLUMN
from include.extract.csv_fast_path import NotFastPath, contract_csv_body
from include.extract.file_kind import sniff
from include.extract.limits import Limits, too_many_rows
from include.load import batches, file_batches

log = logging.getLogger(__name__)

EXPORTS_SOURCE = "assessment_exports"  # audit.load_batches.source of export files
EXPORT_TABLE = contract.EXPORT.raw_table  # raw.assessment_export_rows
EXPORT_ENTITY = contract.EXPORT.entity  # its GX suite: expectations/assessment_export_rows.json


def stage_export(
    conn: psycopg.Connection,
    batch_id: int,
    path: Path,
    report: ParseReport,
    *,
    landed: landing.Landed | None = None,
) -> tuple[int, int]:
    """Stage the file into ``stage.batch_<id>`` (good rows) and ``…_rejects``; not committed.

    ``path``: the file to read (a landed copy: UTF-8 text or a workbook); ``landed``: what
    :func:`landing.land` found (the name for lineage and messages, kind, line count).
    Returns (rows staged, rows rejected). Raises :class:`~include.extract.rejects.FileRejected`.
    """
    name = landed.path if landed else path
    limits = Limits.from_settings()
    kind = landed.kind if landed else sniff(path)
    if kind == "csv":
        body = contract_csv_body(path)
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
                    raise NotFastPath("a quoted field holds lines that look like records")
                if staged > limits.max_rows:
                    raise too_many_rows(name, limits)
                report.kind, report.fast, report.rows_read = "csv", True, staged
                rejected = _reject_impossible_dates(conn, batch_id)
                _add_batch_constants(conn, batch_id, name.name)
                return staged - rejected, rejected
            except (psycopg.DataError, NotFastPath) as err:
                conn.rollback()  # nothing of this attempt remains, not even the stage table
                log.info("%s: COPY refused the file (%s); parsing it row by row", name.name, err)
    counts = _stage_parsed(conn, batch_id, path, report, name=name, kind=kind, limits=limits)
    _add_batch_constants(conn, batch_id, name.name)
    return counts


def _maybe_swallowed(conn: psycopg.Connection, batch_id: int) -> bool:
    """Whether a staged field holds a line break followed by a line with a record's commas, or ends one."""
    width = len(CONTRACT_COLUMNS)
    pattern = f"\n([^\n,]*,){{{width - 1}}}|\n$"
    return conn.execute(
        sql.SQL("select exists (select from {} where {})").format(
            batches.stage_table(batch_id),
            sql.SQL(" or ").join(
                sql.SQL("{} ~ {}").format(sql.Identifier(c), sql.Literal(pattern)) for c in CONTRACT_COLUMNS
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
    stage, sequence = batches.stage_table(batch_id), batches.stage_table(batch_id, "_row")
    # CACHE: one session draws all values, in order; fewer sequence updates per row.
    conn.execute(sql.SQL("create sequence {} start 2 cache 1000").format(sequence))
    conn.execute(
        sql.SQL(
            "create table {stage} ({cols}, "
            "_batch_id bigint not null default {id} constraint batch check (_batch_id = {id}), "
            "_source_row bigint not null default nextval({seq}))"
        ).format(
            stage=stage,
            cols=sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in CONTRACT_COLUMNS),
            id=sql.Literal(batch_id),
            seq=sql.Literal(f"stage.batch_{batch_id}_row"),
        )
    )
    conn.execute(sql.SQL("alter sequence {} owned by {}._source_row").format(sequence, stage))
    batches.create_rejects_table(conn, batch_id)
    conn.execute(
        sql.SQL("alter table {} add column assessment_id text").format(
            batches.stage_table(batch_id, "_rejects")
        )
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
        ).format(batches.stage_table(batch_id), sql.Literal(source))
    )


def _stage_csv_fast(conn: psycopg.Connection, batch_id: int, path: Path, body) -> int:
    """The file's bytes straight into ``COPY … (FORMAT csv)``; returns the records staged.

    ``FORCE_NULL`` makes a quoted empty field NULL as well, like an unquoted one (the row-by-row
    parser does the same). ``FREEZE``: the table is new in this transaction, so its rows can be
    written frozen, sparing raw a later rewrite by VACUUM. Impossible dates are taken out
    afterwards, in SQL (:func:`_reject_impossible_dates`).
    """
    _create_export_stage(conn, batch_id)
    cols = sql.SQL(", ").join(map(sql.Identifier, CONTRACT_COLUMNS))
    with conn.cursor() as cur:
        with cur.copy(
            sql.SQL("copy {} ({}) from stdin (format csv, encoding 'UTF8', freeze, force_null ({}))").format(
                batches.stage_table(batch_id), cols, cols
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
    stage, date = batches.stage_table(batch_id), sql.Identifier(DATE_COLUMN)
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
            rejects=batches.stage_table(batch_id, "_rejects"),
            date=date,
            cols=sql.SQL(", ").join(map(sql.Identifier, CONTRACT_COLUMNS)),
            quest=sql.Identifier("Quest.ID"),
            reason=sql.Literal(f"impossible date in {DATE_COLUMN}: "),
        ),
        {"dates": impossible},
    ).rowcount


def _stage_parsed(
    conn: psycopg.Connection,
    batch_id: int,
    path: Path,
    report: ParseReport,
    *,
    name: Path,
    kind: str,
    limits: Limits,
) -> tuple[int, int]:
    """Row by row in Python (:func:`iter_chunks`): any header order, XLSX, row rejects."""
    _create_export_stage(conn, batch_id)
    columns = [*CONTRACT_COLUMNS, "_source_row"]
    copy_rows = sql.SQL("copy {} ({}) from stdin (format csv, freeze)").format(
        batches.stage_table(batch_id), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    copy_rejects = sql.SQL("copy {} (source_row, raw_text, reason, assessment_id) from stdin").format(
        batches.stage_table(batch_id, "_rejects")
    )
    return file_batches.copy_chunks(
        conn,
        iter_chunks(path, report, name=name, kind=kind, limits=limits),
        copy_rows,
        copy_rejects,
        lambda r: (r.source_row, r.raw_text.replace("\0", ""), r.reason, r.assessment_id),
    )


def quarantine_broken_rows(conn: psycopg.Connection, batch_id: int, outcome) -> tuple[list[str] | None, str]:
    """Rules about a row quarantine that row: (the rules that hold the batch, or None; a note).

    When every failed critical rule is a row rule (:func:`include.validate.suites.split_failures`), the
    staged rows that break them move to the rejects (:func:`quarantine_export_rows`), the rest of
    the file loads, and their assessments are held downstream like those of any rejected record.
    A rule about the file as a whole (its columns, key uniqueness) holds the batch: None, every
    failed critical rule named. A row rule whose test finds no row in SQL (it could not run, or GX
    and SQL disagree) holds the batch too: nothing fails silently. Not committed.
    """
    if outcome is None or not outcome.failed_critical:
        return [], ""
    from include.validate import suites as validation

    row_rules, batch_rules = validation.split_failures(EXPORT_ENTITY, outcome, batches.stage_table(batch_id))
    if batch_rules:
        return None, ""
    moved = quarantine_export_rows(conn, batch_id, row_rules)
    if any(not moved.reasons.get(batches.rule_reason(rule)) for rule, _ in row_rules):
        conn.rollback()  # the stage is committed: only the moves are undone
        return None, ""
    return [], f"{moved.count} rows quarantined alone ({moved.summary()})"


def quarantine_export_rows(conn: psycopg.Connection, batch_id: int, row_rules: list) -> batches.Quarantined:
    """Move the staged export rows that break any of ``row_rules`` ((rule, condition)) to the rejects.

    Each is kept whole, as the parser keeps a rejected record: its fields as one CSV record
    (``stage.csv_record``), its ``Quest.ID`` as ``assessment_id``, the reason naming every rule it
    breaks. Counted per rule. Not committed.
    """
    rules = [(batches.rule_reason(rule), cond) for rule, cond in row_rules]
    count, per_rule = conn.execute(
        sql.SQL(
            "with bad as (delete from {stage} where {broken} returning *, {names} as broken), "
            "moved as (insert into {rejects} (source_row, raw_text, reason, assessment_id) "
            "select _source_row, stage.csv_record(array[{cols}]), array_to_string(broken, '; '), "
            "nullif(btrim({quest}), '') from bad) "
            "select (select count(*) from bad), (select coalesce(jsonb_object_agg(reason, n), '{{}}') "
            "from (select reason, count(*) as n from bad, unnest(broken) as reason group by reason) as r)"
        ).format(
            stage=batches.stage_table(batch_id),
            broken=sql.SQL(" or ").join(sql.SQL("({})").format(cond) for _, cond in rules),
            names=batches.broken_rules_sql(rules),
            rejects=batches.stage_table(batch_id, "_rejects"),
            cols=sql.SQL(", ").join(map(sql.Identifier, CONTRACT_COLUMNS)),
            quest=sql.Identifier("Quest.ID"),
        )
    ).fetchone()
    return batches.Quarantined(count=count, reasons={r: per_rule[r] for r in sorted(per_rule)})
