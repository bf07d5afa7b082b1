"""A landed CSV's records, read physical line by physical line and each judged as it is read.

A row whose field count differs from the header's or that holds bytes which are not UTF-8 is a
record rejected alone; a quote that swallows lines (opened and never closed, so that several
physical lines would become one record), an empty file or a truncated last record rejects the file.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from include.extract.columns import EXPORT_SPEC, ColumnSpec, header_positions
from include.extract.limits import Limits, too_many_rows
from include.extract.records import ParseReport, Record
from include.extract.rejects import FIX, FileRejected


def csv_records(
    path: Path, name: Path, report: ParseReport, limits: Limits, spec: ColumnSpec = EXPORT_SPEC
) -> Iterator[tuple[list[int], Record]]:
    """The CSV's records, each judged as it is read: every check of a record, the quote that
    swallows lines above all, needs the physical lines the reader consumed for it (``lines.current``),
    so the checks run inside this loop, between one record and the next."""
    with path.open("rb") as f:
        lines = _Lines(f)
        reader = csv.reader(lines)
        positions, width = _read_header(reader, lines, name, report, limits, spec)
        row_no = 1
        last: tuple[int, list | None, str] | None = None
        while True:
            lines.current.clear()
            lines.bad = False
            start = lines.number + 1
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as err:
                if len(lines.current) > 1:
                    raise _swallowed(name, start, len(lines.current), row_no + 1, str(err)) from err
                # One line: the reader resynchronises on the next one; this record alone goes to quarantine.
                row_no += 1
                report.rows_read += 1
                yield positions, (row_no, None, "".join(lines.current), f"unparsable CSV record: {err}")
                continue
            if not fields:
                continue  # a blank line is not a record
            row_no += 1
            report.rows_read += 1
            if report.rows_read > limits.max_rows:
                raise too_many_rows(name, limits)
            raw = "".join(lines.current)
            _check_quotes(name, fields, raw, len(lines.current), start, row_no, width)
            last = (row_no, fields, raw)
            yield positions, _judged(row_no, fields, raw, lines.bad, width)
        _check_not_cut_short(name, last, lines.last, width)


def _read_header(
    reader, lines: _Lines, name: Path, report: ParseReport, limits: Limits, spec: ColumnSpec
) -> tuple[list[int], int]:
    """The header's positions of the source's columns, and its width; or :class:`FileRejected`."""
    try:
        header = next(reader)
    except StopIteration as err:
        raise FileRejected(name, "empty file (no header, no rows); " + FIX) from err
    except csv.Error as err:
        raise FileRejected(name, f"not a CSV export: {err}; " + FIX) from err
    if lines.bad:
        raise FileRejected(name, "not a CSV export: the header is not UTF-8 text; " + FIX)
    if len(lines.current) > 1:
        raise _swallowed(name, 1, len(lines.current), 1, "the header")
    return header_positions(name, header, report, limits, spec), len(header)


def _check_quotes(
    name: Path, fields: list, raw: str, spans: int, start: int, row_no: int, width: int
) -> None:
    """Reject the file if the record's quoting swallowed lines (``spans``: the physical lines it took)."""
    if spans == 1 and any("\n" in v for v in fields):  # only a quote open at the end does that
        raise _swallowed(name, start, spans, row_no, "the quote is never closed")
    if spans > 1:
        if raw.count('"') % 2 == 1 or fields[-1].endswith("\n"):
            raise _swallowed(name, start, spans, row_no, "the quote is never closed")
        if len(fields) != width:
            raise _swallowed(name, start, spans, row_no, f"{len(fields)} fields, the header has {width}")
        if any(_looks_like_records(v, width) for v in fields if "\n" in v):
            raise _swallowed(name, start, spans, row_no, "its lines look like records of their own")


def _judged(row_no: int, fields: list, raw: str, undecodable: bool, width: int) -> Record:
    """A parsed record: good, or rejected alone (bytes that are not UTF-8, a wrong field count)."""
    if undecodable:
        return (row_no, None, raw, "undecodable bytes (not UTF-8)")
    if len(fields) != width:
        return (row_no, None, raw, f"wrong field count: {len(fields)}, header has {width}")
    return (row_no, fields, None, None)


def _check_not_cut_short(
    name: Path, last: tuple[int, list | None, str] | None, last_line: bytes, width: int
) -> None:
    """Reject the file if its last record, with no final newline, was cut (:func:`_cut_short`)."""
    if last is not None and not last_line.endswith(b"\n") and _cut_short(last[1], last[2], width):
        raise FileRejected(
            name,
            f"truncated: the last record (row {last[0]}) ends mid-row (was the file copied whole?); " + FIX,
        )


class _Lines:
    """Physical lines of a CSV, decoded one by one so that one bad byte spoils one record only."""

    def __init__(self, f):
        self.f = f
        self.current: list[str] = []  # lines of the record being read (its raw text)
        self.bad = False  # the record being read holds undecodable bytes
        self.last = b""
        self.number = 0  # physical lines read so far

    def __iter__(self):
        first = True
        for line in self.f:
            self.last = line
            self.number += 1
            try:
                text = line.decode("utf-8-sig" if first else "utf-8")
            except UnicodeDecodeError:
                text = line.decode("utf-8", errors="replace")
                self.bad = True
            first = False
            self.current.append(text)
            yield text


def _swallowed(path: Path, first_line: int, lines: int, row_no: int, why: str) -> FileRejected:
    return FileRejected(
        path,
        f"a quote opened on line {first_line} (row {row_no}) is not closed where its field ends, so "
        f"{lines} lines would become one record ({why}); nothing of the file was loaded, so that no row is "
        'lost silently; close or double the quote ("" inside a quoted field), or export the file again, '
        "and drop the corrected file in the folder",
    )


def _looks_like_records(value: str, width: int) -> bool:
    """A quoted field holding a line with as many commas as a record: lines swallowed by a quote."""
    return any(line.count(",") >= width - 1 for line in value.split("\n")[1:])


def _cut_short(fields: list | None, raw: str, width: int) -> bool:
    """Whether a record with no final newline was cut: an open quote, or fewer fields than the header."""
    return raw.count('"') % 2 == 1 or fields is None or len(fields) < width
