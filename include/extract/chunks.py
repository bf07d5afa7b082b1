"""A landed CSV or XLSX streamed as chunks of good rows and rejects, memory bounded by one chunk.

:func:`iter_chunks` reads a landed file (:mod:`include.extract.csv_rows`,
:mod:`include.extract.xlsx_rows`), keeps the source's columns in order (default: the 14 contract
columns) and sorts every record into *good rows* (for the stage table) or *rejects* (for
``quarantine.rejected_rows``):

- a row whose field count differs from the header's, that holds bytes which are not UTF-8, or whose
  ``Assesment.Start.Date`` looks like ``dd/mm/yyyy`` but is no calendar date (``31/02/2024``) is
  rejected alone, its record kept whole; the rest of the file goes on;
- a file that is empty, not a CSV/XLSX at all, truncated, in an encoding that cannot be told, over
  a limit, whose header lacks contract columns, or whose quoting swallows lines (a quote opened and
  never closed, so that several physical lines would become one record) raises
  :class:`~include.extract.rejects.FileRejected`, naming the file, where, and what to do.

Rows read count the file's records as written: one line each, or several only for a quoted field
that holds a line break and nothing that looks like further records. A file with a header and no
data rows is a valid export of nothing: it loads 0 rows. Blank lines (and blank spreadsheet rows)
are not records and are not counted. Row numbers count records, the header being row 1 (in XLSX:
the sheet's row number).
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

from include.extract.columns import CONTRACT_COLUMNS, DATE_COLUMN, EXPORT_SPEC, ColumnSpec
from include.extract.csv_rows import csv_records
from include.extract.file_kind import sniff
from include.extract.limits import Limits
from include.extract.records import Chunk, ParseReport, Record
from include.extract.rejects import Reject, csv_record
from include.extract.xlsx_rows import calamine_records, check_zip, openpyxl_records

CHUNK_ROWS = 10_000  # rows parsed in Python per COPY: memory is bounded by one chunk

_DATE_SHAPE = re.compile(r"[0-9]{2}/[0-9]{2}/[0-9]{4}")  # ASCII digits, as stage.impossible_ddmmyyyy


def iter_chunks(
    path: Path,
    report: ParseReport | None = None,
    chunk_rows: int = CHUNK_ROWS,
    *,
    name: Path | None = None,
    limits: Limits | None = None,
    kind: str | None = None,
    xlsx_reader: str = "calamine",
    spec: ColumnSpec = EXPORT_SPEC,
) -> Iterator[Chunk]:
    """Stream the file's records as chunks of good rows and rejects (see the module docstring).

    ``path`` is read as UTF-8 (a CSV) or as a workbook; ``name``: the file as landed, for messages
    (default: ``path``). :class:`FileRejected` may be raised before the first chunk or after the
    last one (a truncated file, a quote never closed): the caller loads nothing from a file until
    the iterator is exhausted. ``xlsx_reader``: ``'calamine'`` (fast) or ``'openpyxl'`` (the
    reference the tests compare it with). ``spec``: the columns kept and required (default: the
    assessment export's).
    """
    report = report if report is not None else ParseReport()
    limits = limits or Limits()
    name = name or path
    report.kind = kind or sniff(path)
    if report.kind == "csv":
        records = csv_records(path, name, report, limits, spec)
    else:
        sheet_bytes = check_zip(path, name, limits)
        if xlsx_reader == "openpyxl" or sheet_bytes > limits.xlsx_fast_max_bytes:
            report.reader = "openpyxl"
            records = openpyxl_records(path, name, report, limits, spec)
        else:
            report.reader = "calamine"
            if sheet_bytes > limits.xlsx_child_min_bytes:
                # calamine holds the whole sheet: let a child process hold it (include/extract/xlsx_child.py)
                from include.extract import xlsx_child

                yield from xlsx_child.iter_chunks(path, name, report, limits, chunk_rows, spec)
                return
            records = calamine_records(path, name, report, limits, spec)
    yield from _chunked(records, chunk_rows, spec)


def read_xlsx_chunks(
    path: Path, name: Path, report: ParseReport, limits: Limits, chunk_rows: int, spec: ColumnSpec
) -> Iterator[Chunk]:
    """The first worksheet's chunks, read with python-calamine in this process (what
    :mod:`include.extract.xlsx_child` runs in its child)."""
    yield from _chunked(calamine_records(path, name, report, limits, spec), chunk_rows, spec)


_QUEST_AT = CONTRACT_COLUMNS.index("Quest.ID")


def assessment_of(fields: list | None, raw: str | None, positions: list[int] | None) -> str | None:
    """The Quest.ID of a rejected record, if it can be read from its fields or raw text."""
    if fields is None and raw:
        try:
            fields = next(csv.reader([raw.replace("\r", "").replace("\n", " ")]), None)
        except csv.Error:
            fields = None
    if not fields or positions is None:
        return None
    at = positions[_QUEST_AT]
    value = fields[at] if at < len(fields) else None
    value = None if value is None else str(value).strip()
    return value or None


_valid_dates: dict[str, bool] = {}


def _impossible_date(value: str | None) -> bool:
    """True for a dd/mm/yyyy-shaped value that is no calendar date; other shapes are GX's job."""
    if not value:
        return False
    known = _valid_dates.get(value)
    if known is None:
        if _DATE_SHAPE.fullmatch(value):
            try:
                dt.date(int(value[6:]), int(value[3:5]), int(value[:2]))
                known = True
            except ValueError:
                known = False
        else:
            known = True
        if len(_valid_dates) < 100_000:  # exports hold few distinct dates; the cache stays small
            _valid_dates[value] = known
    return not known


def _chunked(
    records: Iterator[tuple[list[int], Record]], chunk_rows: int, spec: ColumnSpec = EXPORT_SPEC
) -> Iterator[Chunk]:
    chunk = Chunk(rows=[])
    positions: list[int] | None = None
    date_at = spec.columns.index(DATE_COLUMN) if DATE_COLUMN in spec.columns else None
    for positions, (row_no, fields, raw, reason) in records:
        if reason is None:
            values = [fields[i] if i >= 0 else None for i in positions]  # -1: an optional column absent
            if date_at is not None and _impossible_date(values[date_at]):
                reason = f"impossible date in {DATE_COLUMN}: {values[date_at]!r}"
                raw = raw if raw is not None else csv_record(fields)
            else:
                values.append(row_no)
                chunk.rows.append(values)
        if reason is not None:
            quest = assessment_of(fields, raw, positions) if spec is EXPORT_SPEC else None
            chunk.rejects.append(Reject(row_no, raw or "", reason, quest))
        if len(chunk.rows) + len(chunk.rejects) >= chunk_rows:
            yield chunk
            chunk = Chunk(rows=[])
    if chunk.rows or chunk.rejects:
        yield chunk
