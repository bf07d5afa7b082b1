"""Survey files into ``stage.batch_<id>``: the instrument's columns, parsed row by row.

Beside :mod:`include.load.stage_exports`. :func:`stage_survey` stages a landed survey file (its
instrument from the file name, its columns from :func:`include.extract.surveys.column_spec`); a
worker file holds names and phone numbers, so its rejects' raw text is a keyed mask of it
(:func:`_masker`), and :func:`mask_stage` masks the staged personal columns of a batch about to be
quarantined whole.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
from psycopg import sql

from include.extract import landing, surveys
from include.extract.chunks import ParseReport, iter_chunks
from include.extract.file_kind import sniff
from include.extract.limits import Limits
from include.extract.rejects import FileRejected
from include.load import batches, file_batches


def instrument_of(name: str) -> str:
    return surveys.parse_name(name).instrument


def stage_survey(
    conn: psycopg.Connection,
    batch_id: int,
    path: Path,
    report: ParseReport,
    *,
    landed: landing.Landed | None = None,
) -> tuple[int, int]:
    """Stage one survey file into ``stage.batch_<id>`` and ``…_rejects`` (not committed).

    Same contract as :func:`include.load.stage_exports.stage_export`: raises :class:`FileRejected`
    for a file that cannot be loaded at all (its name does not say the instrument, its header lacks
    a required column, …). Returns (rows staged, rows rejected).
    """
    name = landed.path if landed else path
    try:
        instrument = instrument_of(name.name)
    except surveys.BadName as err:
        raise FileRejected(name, str(err)) from None
    columns = surveys.raw_columns(instrument)
    _create_survey_stage(conn, batch_id, columns)
    copy_rows = sql.SQL("copy {} ({}) from stdin (format csv)").format(
        batches.stage_table(batch_id), sql.SQL(", ").join(map(sql.Identifier, [*columns, "_source_row"]))
    )
    copy_rejects = sql.SQL("copy {} (source_row, raw_text, reason) from stdin").format(
        batches.stage_table(batch_id, "_rejects")
    )
    mask = _masker(instrument)
    kind = landed.kind if landed else sniff(path)
    chunks = iter_chunks(
        path,
        report,
        name=name,
        kind=kind,
        limits=Limits.from_settings(),
        spec=surveys.column_spec(instrument),
    )
    return file_batches.copy_chunks(
        conn,
        chunks,
        copy_rows,
        copy_rejects,
        lambda r: (r.source_row, mask(r.raw_text.replace("\0", "")), r.reason),
    )


def _create_survey_stage(conn: psycopg.Connection, batch_id: int, columns: tuple[str, ...]) -> None:
    """``stage.batch_<id>``: the instrument's columns as text and the row number; its rejects table."""
    conn.execute(
        sql.SQL(
            "create table {} ({}, _source_row bigint not null, "
            "_batch_id bigint not null default {} constraint batch check (_batch_id = {}))"
        ).format(
            batches.stage_table(batch_id),
            sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in columns),
            sql.Literal(batch_id),
            sql.Literal(batch_id),
        )
    )
    batches.create_rejects_table(conn, batch_id)


def _masker(instrument: str):
    """A quarantined record's raw text: as read, or (worker files: it may hold a name or a phone
    number) a keyed mask of it, so that the same record is recognisable but not readable."""
    if not surveys.PERSONAL[instrument]:
        return lambda text: text
    from include import personal_data, warehouse
    from include.config import settings

    key = warehouse.pseudonym_key(settings())
    return lambda text: personal_data.mask(text, key)


def mask_stage(conn: psycopg.Connection, batch_id: int, instrument: str) -> None:
    """Mask the personal columns of a staged batch about to be quarantined whole (not committed)."""
    personal = surveys.PERSONAL[instrument]
    if not personal:
        return
    from include import personal_data, warehouse
    from include.config import settings

    key = warehouse.pseudonym_key(settings())
    stage = batches.stage_table(batch_id)
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
