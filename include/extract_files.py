"""Assessment export files: find the new ones (by content checksum) and stream-parse their rows.

Nothing here touches the database. :func:`iter_chunks` reads a CSV or XLSX export with memory
bounded by one chunk of rows, keeps the 14 contract columns in contract order and sorts every
record into *good rows* (for the stage table) or *rejects* (for ``quarantine.rejected_rows``):

- a row whose field count differs from the header's, that holds bytes which are not UTF-8, or whose
  ``Assesment.Start.Date`` looks like ``dd/mm/yyyy`` but is no calendar date (``31/02/2024``) is
  rejected alone; the rest of the file goes on;
- a file that is empty, not a CSV/XLSX at all, truncated, or whose header lacks contract columns
  raises :class:`FileRejected`, naming the file and the reason.

A file with a header and no data rows is a valid export of nothing: it loads 0 rows. Blank lines
(and blank spreadsheet rows) are not records and are not counted. Row numbers count records, the
header being row 1 (in XLSX: the sheet's row number).
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from include.contract import EXPORT_COLUMNS

CONTRACT_COLUMNS = EXPORT_COLUMNS  # the 14 columns of contract §1, in order
"""The export's columns, spelled as the global system spells them (data contract §1)."""

DATE_COLUMN = "Assesment.Start.Date"
SUFFIXES = (".csv", ".xlsx")
CHUNK_ROWS = 10_000  # rows parsed in Python per COPY: memory is bounded by one chunk
RAW_TEXT_LIMIT = 4_000  # a quarantined row keeps at most this many characters of its raw text
_DATE_SHAPE = re.compile(r"[0-9]{2}/[0-9]{2}/[0-9]{4}")  # ASCII digits, as stage.impossible_ddmmyyyy
_BINARY_MAGIC = {
    b"%PDF": "a PDF document",
    b"\xd0\xcf\x11\xe0": "a legacy Office (XLS/DOC) file",
    b"\x1f\x8b": "a gzip archive",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
}
_ZIP_MAGIC = b"PK\x03\x04"


class NotFastPath(Exception):
    """The file's bytes cannot go to ``COPY`` as they are; the loader parses it row by row instead."""


class FileRejected(Exception):
    """The whole file cannot be loaded; the message names the file and the reason."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path.name}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class Reject:
    """A record that could not be parsed: it goes to quarantine, not to raw."""

    source_row: int
    raw_text: str
    reason: str


@dataclass
class Chunk:
    rows: list[list]  # the 14 contract values (str or None) then the source row number
    rejects: list[Reject] = field(default_factory=list)


@dataclass
class ParseReport:
    """Filled while a file is read: what the loader records in the batch's audit message."""

    kind: str = ""
    extra_columns: list[str] = field(default_factory=list)
    rows_read: int = 0
    fast: bool = False  # staged by the loader's COPY fast path (contract_csv_body), not parsed here


# --------------------------------------------------------------------------- finding files


def checksum(path: Path) -> str:
    """sha256 of the file's content (read in blocks): a file is known by it, whatever its name."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def candidate_files(folder: Path) -> list[Path]:
    """Export files in the landing folder, oldest first (so the latest export is loaded last).

    Hidden files and office lock files (``.x``, ``~$x``) and partial downloads (``.part``,
    ``.tmp``, ``.crdownload``) are not exports yet. Every other file is a candidate: one with the
    wrong type is rejected with a message rather than silently ignored.
    """
    if not folder.is_dir():
        return []
    files = [
        p
        for p in folder.iterdir()
        if p.is_file()
        and not p.name.startswith((".", "~"))
        and p.suffix.lower() not in {".part", ".tmp", ".crdownload"}
    ]
    return sorted(files, key=lambda p: (p.stat().st_mtime, p.name))


# --------------------------------------------------------------------------- parsing


def sniff(path: Path) -> str:
    """``'csv'`` or ``'xlsx'`` from the file's content and name; raises :class:`FileRejected`."""
    with path.open("rb") as f:
        head = f.read(1 << 16)
    if not head or not head.lstrip(codecs.BOM_UTF8 + b" \t\r\n"):
        raise FileRejected(path, "empty file (no header, no rows)")
    for magic, what in _BINARY_MAGIC.items():
        if head.startswith(magic):
            raise FileRejected(path, f"not a CSV or XLSX export: the content is {what}")
    suffix = path.suffix.lower()
    if head.startswith(_ZIP_MAGIC):
        if suffix not in SUFFIXES:
            raise FileRejected(path, f"unsupported file type {suffix or '(none)'}: expected .csv or .xlsx")
        return "xlsx"
    if suffix == ".xlsx":
        raise FileRejected(path, "not a valid XLSX file (not a zip archive)")
    if suffix != ".csv":
        raise FileRejected(path, f"unsupported file type {suffix or '(none)'}: expected .csv or .xlsx")
    if b"\0" in head:
        raise FileRejected(path, "not a CSV export: binary content (NUL bytes)")
    return "csv"


def contract_csv_body(path: Path, block_size: int = 1 << 20) -> Iterator[bytes] | None:
    """The bytes after the header, in blocks, if the header is exactly the contract's columns.

    This is the loader's fast path: PostgreSQL's ``COPY … (FORMAT csv)`` parses such a file faster
    than Python can, and refuses (so that the loader falls back to :func:`iter_chunks`) whatever the
    row-by-row parser would quarantine or reject: a wrong field count, bytes that are not UTF-8, an
    open quote at the end. ``None``: another header (other order, extra or missing columns, not
    UTF-8); parse row by row. The generator raises :class:`NotFastPath` on a line starting with
    ``\\.``, which ``COPY`` would take for the end of the data.
    """
    f = path.open("rb")
    line = f.readline()
    try:
        names = next(csv.reader([line.removeprefix(codecs.BOM_UTF8).decode("utf-8")]), [])
    except (UnicodeDecodeError, csv.Error):
        names = []
    if [n.strip() for n in names] != list(CONTRACT_COLUMNS) or not line.endswith(b"\n"):
        f.close()
        return None
    return _blocks(f, block_size)


def _blocks(f, block_size: int) -> Iterator[bytes]:
    with f:
        tail = b"\n"  # the header's line end: the first data line is a line start too
        while block := f.read(block_size):
            if b"\n\\." in tail + block[:2] or b"\n\\." in block:
                raise NotFastPath("a line starts with \\. (COPY's end-of-data marker)")
            tail = block[-2:]
            yield block


def csv_record(fields: list) -> str:
    """Fields as one CSV record, for a quarantined row's raw text (same rule as ``stage.csv_record``)."""
    return ",".join(
        '"' + v.replace('"', '""') + '"' if any(c in v for c in ',"\r\n') else v
        for v in ("" if f is None else str(f) for f in fields)
    )


def iter_chunks(
    path: Path, report: ParseReport | None = None, chunk_rows: int = CHUNK_ROWS
) -> Iterator[Chunk]:
    """Stream the file's records as chunks of good rows and rejects (see the module docstring).

    :class:`FileRejected` may be raised before the first chunk or, for a truncated file, after
    the last one: the caller loads nothing from a file until the iterator is exhausted.
    """
    report = report if report is not None else ParseReport()
    report.kind = sniff(path)
    records = _csv_records(path, report) if report.kind == "csv" else _xlsx_records(path, report)
    yield from _chunked(records, chunk_rows)


def _header_positions(path: Path, header: list[str], report: ParseReport) -> list[int]:
    names = [(h or "").strip() if isinstance(h, str) else ("" if h is None else str(h)) for h in header]
    missing = [c for c in CONTRACT_COLUMNS if c not in names]
    if missing:
        if not any(c in names for c in CONTRACT_COLUMNS):
            raise FileRejected(
                path, "not an assessment export: the first row has none of the contract columns"
            )
        raise FileRejected(path, f"header lacks contract columns: {', '.join(missing)}")
    duplicated = sorted({c for c in CONTRACT_COLUMNS if names.count(c) > 1})
    if duplicated:
        raise FileRejected(path, f"header repeats contract columns: {', '.join(duplicated)}")
    report.extra_columns = [n for n in names if n not in CONTRACT_COLUMNS]
    return [names.index(c) for c in CONTRACT_COLUMNS]


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


# A record as the parsers produce it: (row number, fields or None, raw text or None, reject reason).
_Record = tuple[int, list | None, str | None, str | None]


def _chunked(records: Iterator[tuple[list[int], _Record]], chunk_rows: int) -> Iterator[Chunk]:
    chunk = Chunk(rows=[])
    positions: list[int] | None = None
    date_at = CONTRACT_COLUMNS.index(DATE_COLUMN)
    for positions, (row_no, fields, raw, reason) in records:
        if reason is None:
            values = [fields[i] for i in positions]
            if _impossible_date(values[date_at]):
                reason = f"impossible date in {DATE_COLUMN}: {values[date_at]!r}"
                raw = raw if raw is not None else csv_record(fields)
            else:
                values.append(row_no)
                chunk.rows.append(values)
        if reason is not None:
            chunk.rejects.append(Reject(row_no, (raw or "")[:RAW_TEXT_LIMIT], reason))
        if len(chunk.rows) + len(chunk.rejects) >= chunk_rows:
            yield chunk
            chunk = Chunk(rows=[])
    if chunk.rows or chunk.rejects:
        yield chunk


class _Lines:
    """Physical lines of a CSV, decoded one by one so that one bad byte spoils one record only."""

    def __init__(self, f):
        self.f = f
        self.current: list[str] = []  # lines of the record being read (its raw text)
        self.bad = False  # the record being read holds undecodable bytes
        self.last = b""

    def __iter__(self):
        first = True
        for line in self.f:
            self.last = line
            try:
                text = line.decode("utf-8-sig" if first else "utf-8")
            except UnicodeDecodeError:
                text = line.decode("utf-8", errors="replace")
                self.bad = True
            first = False
            self.current.append(text)
            yield text


def _csv_records(path: Path, report: ParseReport) -> Iterator[tuple[list[int], _Record]]:
    with path.open("rb") as f:
        lines = _Lines(f)
        reader = csv.reader(lines)
        try:
            header = next(reader)
        except StopIteration as err:
            raise FileRejected(path, "empty file (no header, no rows)") from err
        except csv.Error as err:
            raise FileRejected(path, f"not a CSV export: {err}") from err
        if lines.bad:
            raise FileRejected(path, "not a CSV export: the header is not UTF-8 text")
        positions = _header_positions(path, header, report)
        width = len(header)
        row_no = 1
        last: tuple[int, list | None, str] | None = None
        while True:
            lines.current.clear()
            lines.bad = False
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as err:
                # The reader resynchronises on the next line; this record alone is lost to quarantine.
                row_no += 1
                report.rows_read += 1
                yield positions, (row_no, None, "".join(lines.current), f"unparsable CSV record: {err}")
                continue
            if not fields:
                continue  # a blank line is not a record
            row_no += 1
            report.rows_read += 1
            raw = "".join(lines.current)
            last = (row_no, fields, raw)
            if lines.bad:
                yield positions, (row_no, None, raw, "undecodable bytes (not UTF-8)")
            elif len(fields) != width:
                yield positions, (row_no, None, raw, f"wrong field count: {len(fields)}, header has {width}")
            else:
                yield positions, (row_no, fields, None, None)
        if last is not None and not lines.last.endswith(b"\n") and _cut_short(last[1], last[2], width):
            raise FileRejected(path, f"truncated: the last record (row {last[0]}) ends mid-row")


def _cut_short(fields: list | None, raw: str, width: int) -> bool:
    """Whether a record with no final newline was cut: an open quote, or fewer fields than the header."""
    return raw.count('"') % 2 == 1 or fields is None or len(fields) < width


def _cell(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime | dt.date):
        return value.strftime("%d/%m/%Y")  # exports spell dates dd/mm/yyyy; Excel may have typed them
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value)
    return text if text != "" else None


def _xlsx_records(path: Path, report: ParseReport) -> Iterator[tuple[list[int], _Record]]:
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as err:
        raise FileRejected(path, f"not a readable XLSX file (truncated or corrupt: {err})") from err
    try:
        sheet = book.worksheets[0] if book.worksheets else None
        if sheet is None:
            raise FileRejected(path, "XLSX file has no worksheet")
        rows = sheet.iter_rows(values_only=True)
        try:
            header = next(rows, None)
            while header is not None and all(v is None for v in header):
                header = next(rows, None)
            if header is None:
                raise FileRejected(path, "empty file (no header, no rows)")
            header = list(header)
            while header and header[-1] is None:
                header.pop()
            positions = _header_positions(path, header, report)
            width = len(header)
            for row_no, values in enumerate(rows, start=2):
                cells = [_cell(v) for v in values]
                while len(cells) > width and cells[-1] is None:
                    cells.pop()
                if not any(c is not None for c in cells):
                    continue
                report.rows_read += 1
                if len(cells) > width:
                    raw = ",".join("" if c is None else c for c in cells)
                    yield (
                        positions,
                        (row_no, None, raw, f"wrong field count: {len(cells)}, header has {width}"),
                    )
                    continue
                cells.extend([None] * (width - len(cells)))
                yield positions, (row_no, cells, None, None)
        except (zipfile.BadZipFile, EOFError, KeyError, OSError) as err:
            raise FileRejected(path, f"not a readable XLSX file (truncated or corrupt: {err})") from err
        except Exception as err:  # openpyxl raises assorted XML errors on a cut sheet
            if isinstance(err, FileRejected):
                raise
            raise FileRejected(path, f"not a readable XLSX file ({type(err).__name__}: {err})") from err
    finally:
        book.close()
