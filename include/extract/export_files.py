"""Assessment export files: land them (complete, hashed, decoded), then stream-parse their rows.

Nothing here touches the database. :func:`ready_files` lists the files of the landing folder that
are complete (see the landing protocol in docs/LOADING.md); :func:`land` reads one such file
**once**: into a private temporary copy, computing its sha256 from the same bytes, detecting a
CSV's text encoding (UTF-8 with or without BOM, UTF-16 with BOM, Windows-1252) and converting it
to UTF-8, and enforcing the cost limits (:class:`Limits`). Everything after it reads the copy, so
the rows loaded are exactly the bytes hashed.

:func:`iter_chunks` reads a landed CSV or XLSX with memory bounded by one chunk of rows, keeps the
14 contract columns in contract order and sorts every record into *good rows* (for the stage table)
or *rejects* (for ``quarantine.rejected_rows``):

- a row whose field count differs from the header's, that holds bytes which are not UTF-8, or whose
  ``Assesment.Start.Date`` looks like ``dd/mm/yyyy`` but is no calendar date (``31/02/2024``) is
  rejected alone, its record kept whole; the rest of the file goes on;
- a file that is empty, not a CSV/XLSX at all, truncated, in an encoding that cannot be told, over
  a limit, whose header lacks contract columns, or whose quoting swallows lines (a quote opened and
  never closed, so that several physical lines would become one record) raises
  :class:`FileRejected`, naming the file, where, and what to do.

Rows read count the file's records as written: one line each, or several only for a quoted field
that holds a line break and nothing that looks like further records. A file with a header and no
data rows is a valid export of nothing: it loads 0 rows. Blank lines (and blank spreadsheet rows)
are not records and are not counted. Row numbers count records, the header being row 1 (in XLSX:
the sheet's row number).
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import os
import re
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from include.contract import EXPORT_COLUMNS

CONTRACT_COLUMNS = EXPORT_COLUMNS  # the 14 export columns (docs/SOURCES.md), in order
"""The export's columns, spelled as the global system spells them (docs/SOURCES.md)."""

DATE_COLUMN = "Assesment.Start.Date"
SUFFIXES = (".csv", ".xlsx")
CHUNK_ROWS = 10_000  # rows parsed in Python per COPY: memory is bounded by one chunk
_DATE_SHAPE = re.compile(r"[0-9]{2}/[0-9]{2}/[0-9]{4}")  # ASCII digits, as stage.impossible_ddmmyyyy
_BINARY_MAGIC = {
    b"%PDF": "a PDF document",
    b"\xd0\xcf\x11\xe0": "a legacy Office (XLS/DOC) file",
    b"\x1f\x8b": "a gzip archive",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
}
_ZIP_MAGIC = b"PK\x03\x04"
_MARKUP = re.compile(rb"\s*<(!doctype html|html|\?xml|table|head|body)[\s>]", re.IGNORECASE)
SHEET_HEADER_SEARCH = 100  # rows of a worksheet looked at for its header when choosing the sheet


@dataclass(frozen=True)
class ColumnSpec:
    """Which columns a file source keeps (in this order) and which its header must have.

    The default is the assessment export's (docs/SOURCES.md). Another file source (the survey
    instruments, include/extract/surveys.py) passes its own to :func:`iter_chunks`: a column of
    ``columns`` missing from ``required`` may be absent from a file (its values are then None).
    """

    columns: tuple[str, ...]
    required: tuple[str, ...]
    what: str = "assessment export"


EXPORT_SPEC = ColumnSpec(tuple(CONTRACT_COLUMNS), tuple(CONTRACT_COLUMNS))


class NotFastPath(Exception):
    """The file's bytes cannot go to ``COPY`` as they are; the loader parses it row by row instead."""


class FileRejected(Exception):
    """The whole file cannot be loaded; the message names the file and the reason."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path.name}: {reason}")
        self.path = path
        self.reason = reason


class NotReady(Exception):
    """The file is still being written (or went away) while it was read: taken on a later run."""


FIX = "correct the file (or export it again) and drop the corrected file in the folder"
"""What to do about a rejected file, said in its reason: corrected content is a new file to the loader."""


@dataclass(frozen=True)
class Limits:
    """What one export file may cost (``include.config``: ``EXPORT_MAX_*``)."""

    max_bytes: int = 2 << 30
    max_rows: int = 10_000_000
    max_columns: int = 200
    max_xlsx_uncompressed_bytes: int = 2 << 30
    xlsx_fast_max_bytes: int = 512 << 20  # a larger sheet is streamed by openpyxl: bounded memory
    xlsx_child_min_bytes: int = 32 << 20  # a larger sheet is read in a child process (xlsx_child)

    @classmethod
    def from_settings(cls) -> Limits:
        from include.config import settings

        cfg = settings()
        return cls(
            cfg.export_max_bytes,
            cfg.export_max_rows,
            cfg.export_max_columns,
            cfg.export_max_xlsx_uncompressed_bytes,
            cfg.xlsx_fast_max_bytes,
            cfg.xlsx_child_min_bytes,
        )


@dataclass(frozen=True)
class Reject:
    """A record that could not be parsed: it goes to quarantine (whole), not to raw."""

    source_row: int
    raw_text: str
    reason: str
    assessment_id: str | None = None  # the record's Quest.ID when it can be read


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
    reader: str = ""  # the XLSX reader used
    sheet: str = ""  # the worksheet read, when the workbook has several
    sheets: int = 0  # worksheets in the workbook


@dataclass
class Landed:
    """A file read once by :func:`land`: its checksum, and a private copy that the loader parses."""

    path: Path  # the file in the landing folder (its name goes into lineage and messages)
    copy: Path | None  # CSV: the content as UTF-8; XLSX: the workbook's bytes; None if rejected
    checksum: str  # sha256 of the file's bytes as landed (the same bytes the copy was made from)
    size: int
    kind: str = ""  # 'csv' or 'xlsx'
    encoding: str | None = None  # a CSV's text encoding as found
    lines: int = 0  # line breaks in the (UTF-8) copy of a CSV: records can be checked against it
    exported_on: dt.date | None = None
    rejected: str | None = None  # why the file is rejected whole (its checksum is known all the same)

    def discard(self) -> None:
        if self.copy is not None:
            self.copy.unlink(missing_ok=True)


# --------------------------------------------------------------------------- finding files


def checksum(path: Path) -> str:
    """sha256 of the file's content (read in blocks): a file is known by it, whatever its name."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


PARTIAL_SUFFIXES = (".part", ".tmp", ".crdownload")
_NAME_DATE = re.compile(r"(?<![0-9])([0-9]{4})-([0-9]{2})-([0-9]{2})(?![0-9])")


def candidate_files(folder: Path) -> list[Path]:
    """Export files in the landing folder, in export order (export date, then modification time, name).

    Hidden files and office lock files (``.x``, ``~$x``) and partial downloads (``.part``,
    ``.tmp``, ``.crdownload``: the write-then-rename convention) are not exports yet. Every other
    file is a candidate: one with the wrong type is rejected with a message rather than silently
    ignored.
    """
    if not folder.is_dir():
        return []
    files = []
    for p in folder.iterdir():
        if p.name.startswith((".", "~")) or p.name.lower().endswith(PARTIAL_SUFFIXES):
            continue
        try:
            if p.is_file():
                files.append((exported_on(p), p.stat().st_mtime, p.name, p))
        except OSError:
            continue  # gone meanwhile
    return [f[-1] for f in sorted(files)]


def exported_on(path: Path) -> dt.date:
    """The export's date: the first valid ``YYYY-MM-DD`` in the file name, else its modification date.

    ``bwpk_assessments_2025-12-22_corrections.csv`` → 2025-12-22. It decides which export of an
    assessment wins downstream, whatever the order in which files were loaded.
    """
    for match in _NAME_DATE.finditer(path.name):
        try:
            return dt.date(*(int(g) for g in match.groups()))
        except ValueError:
            continue
    return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).date()


def ready_files(
    folder: Path, min_age_seconds: float = 60.0, settle_seconds: float = 2.0
) -> tuple[list[Path], list[Path]]:
    """(complete files, files still being written) among :func:`candidate_files`.

    A file modified more than ``min_age_seconds`` ago is complete. A younger one is taken only if
    its size and modification time are the same after ``settle_seconds`` (one wait for all of
    them); :func:`land` checks once more that nothing changed while it read the file.
    """
    files = candidate_files(folder)
    now = time.time()
    young = {}
    for p in files:
        try:
            st = p.stat()
        except OSError:
            continue
        if now - st.st_mtime < min_age_seconds:
            young[p] = (st.st_size, st.st_mtime_ns)
    waiting: list[Path] = []
    if young and settle_seconds > 0:
        time.sleep(settle_seconds)
    for p, before in young.items():
        try:
            st = p.stat()
            if (st.st_size, st.st_mtime_ns) != before:
                waiting.append(p)
        except OSError:
            waiting.append(p)
    return [p for p in files if p not in waiting and p.exists()], waiting


def land(path: Path, workdir: Path, limits: Limits | None = None) -> Landed:
    """Read the file once: sha256, a private copy to parse (UTF-8 for a CSV), checks and limits.

    Raises :class:`NotReady` if the file changed or went away while it was read. A file that cannot
    be loaded comes back with ``rejected`` set (and its checksum, so that the same bytes are not
    examined again on every run).
    """
    limits = limits or Limits()
    try:
        before = path.stat()
        f = path.open("rb")
    except FileNotFoundError as err:
        raise NotReady(f"{path.name}: gone before it was read") from err
    fd, name = _temp(workdir, path)
    copy = Path(name)
    scan = _Scan(limits.max_bytes)
    with f, os.fdopen(fd, "wb") as out:
        while block := f.read(1 << 20):
            scan.feed(block, out)
        scan.end()
    _check_unchanged(path, copy, before, scan.size)
    landed = Landed(path, copy, scan.digest.hexdigest(), scan.size, exported_on=exported_on(path))
    try:
        if scan.size > limits.max_bytes:
            raise FileRejected(
                path,
                f"the file is {_mib(scan.size)}, more than an export may be ({_mib(limits.max_bytes)}, "
                "EXPORT_MAX_BYTES); split the export into smaller files, or raise the limit",
            )
        landed.kind = sniff(path, scan.head)
        if landed.kind == "csv":
            _settle_encoding(landed, scan.head, scan.newlines, scan.bad_utf8_at, scan.nul_at)
        else:
            landed.copy = _renamed(copy, ".xlsx")  # readers go by the suffix, whatever the name said
    except FileRejected as err:
        landed.rejected = err.reason
        landed.discard()
        landed.copy = None
    return landed


@dataclass
class _Scan:
    """What :func:`land` learns of a file's bytes on their way to the private copy, in one pass."""

    max_bytes: int  # beyond this, bytes are hashed but not copied (the file is rejected)
    digest: object = field(default_factory=hashlib.sha256)
    head: bytes = b""  # the first 64 KiB (type sniffing, byte-order marks)
    size: int = 0
    written: int = 0
    newlines: int = 0
    nul_at: int | None = None
    bad_utf8_at: int | None = None
    utf8: object = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")())

    def feed(self, block: bytes, out) -> None:
        self.digest.update(block)
        if not self.head:
            self.head = block[: 1 << 16]
        if self.written <= self.max_bytes:
            out.write(block)
            self.written += len(block)
            self.newlines += block.count(b"\n")
            if self.nul_at is None and b"\0" in block:
                self.nul_at = self.size + block.index(b"\0")
            if self.bad_utf8_at is None:
                try:
                    self.utf8.decode(block)
                except UnicodeDecodeError as err:
                    self.bad_utf8_at = self.size + err.start
        self.size += len(block)

    def end(self) -> None:
        if self.bad_utf8_at is None:
            try:
                self.utf8.decode(b"", final=True)
            except UnicodeDecodeError:
                self.bad_utf8_at = self.size  # cut in the middle of a character


def _check_unchanged(path: Path, copy: Path, before: os.stat_result, size: int) -> None:
    """Raise :class:`NotReady` (and drop the copy) if the file changed or went away while it was read."""
    try:
        after = path.stat()
    except FileNotFoundError as err:
        copy.unlink(missing_ok=True)
        raise NotReady(f"{path.name}: gone while it was read") from err
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns) or size != after.st_size:
        copy.unlink(missing_ok=True)
        raise NotReady(f"{path.name}: changed while it was read (still being written?)")


def _temp(workdir: Path, path: Path) -> tuple[int, str]:
    import tempfile

    return tempfile.mkstemp(prefix="landed-", suffix=".csv", dir=workdir)


def _renamed(copy: Path, suffix: str) -> Path:
    target = copy.with_suffix(suffix)
    copy.rename(target)
    return target


def _mib(n: int) -> str:
    return f"{n / (1 << 20):,.1f} MiB"


def _line_of(path: Path, offset: int) -> int:
    """The 1-based line number of a byte offset in a file."""
    line = 1
    with path.open("rb") as f:
        while offset > 0 and (block := f.read(min(1 << 20, offset))):
            line += block.count(b"\n")
            offset -= len(block)
    return line


def _settle_encoding(
    landed: Landed, head: bytes, newlines: int, bad_utf8_at: int | None, nul_at: int | None
) -> None:
    """Decide the CSV's encoding and leave ``landed.copy`` as UTF-8 text; or raise FileRejected."""
    path, copy = landed.path, landed.copy
    assert copy is not None
    for bom, codec in ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        if head.startswith(bom) and not head.startswith(codecs.BOM_UTF32_LE):
            landed.encoding = f"{codec} (BOM)"
            landed.copy, landed.lines = _transcode(path, copy, codec, len(bom))
            return
    if head.startswith(codecs.BOM_UTF32_LE) or head.startswith(codecs.BOM_UTF32_BE):
        raise FileRejected(
            path,
            "the text is UTF-32, which exports are never in; save it as CSV UTF-8 and drop the new file "
            "in the folder",
        )
    if nul_at is not None:
        raise FileRejected(
            path,
            f"not a CSV export: a NUL byte at byte {nul_at:,} (line {_line_of(copy, nul_at)}): binary "
            "content, or UTF-16 text without a byte-order mark; save it as CSV UTF-8 and drop the new "
            "file in the folder",
        )
    bom = head.startswith(codecs.BOM_UTF8)
    if bad_utf8_at is None:
        landed.encoding = "utf-8 (BOM)" if bom else "utf-8"
        landed.lines = newlines
        _check_line_ends(path, copy, newlines)
        return
    line = _line_of(copy, bad_utf8_at)
    if bom:
        raise FileRejected(
            path,
            f"mixed encodings: the file starts with a UTF-8 byte-order mark but line {line} is not UTF-8; "
            "save it again as CSV UTF-8 and drop the new file in the folder",
        )
    utf8_lines = _lines_with_utf8_characters(copy)
    if utf8_lines:
        raise FileRejected(
            path,
            f"mixed encodings: line {utf8_lines[0]} has UTF-8 characters but line {line} bytes that are "
            "not UTF-8 (Windows-1252?); no single encoding reads every row, so nothing was loaded; save "
            "it again as CSV UTF-8 and drop the new file in the folder",
        )
    try:
        landed.copy, landed.lines = _transcode(path, copy, "cp1252", 0)
    except FileRejected:
        raise FileRejected(
            path,
            f"unknown encoding: line {line} is neither UTF-8 nor Windows-1252 (cp1252) text; save it "
            "again as CSV UTF-8 and drop the new file in the folder",
        ) from None
    landed.encoding = "cp1252"


_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")


def _lines_with_utf8_characters(copy: Path, at_most: int = 1) -> list[int]:
    """Line numbers (up to ``at_most``) that decode as UTF-8 and hold a non-ASCII character."""
    found = []
    with copy.open("rb") as f:
        for number, line in enumerate(f, start=1):
            if line.isascii() or not _UTF8_MULTIBYTE.search(line):
                continue
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                continue
            found.append(number)
            if len(found) >= at_most:
                break
    return found


def _transcode(path: Path, copy: Path, codec: str, skip: int) -> tuple[Path, int]:
    """The copy decoded from ``codec`` (strictly) and written again as UTF-8; (new copy, line breaks)."""
    target = copy.with_name(copy.stem + "-utf8.csv")
    decoder = codecs.getincrementaldecoder(codec)()
    newlines, offset = 0, 0
    with copy.open("rb") as src, target.open("wb") as out:
        src.seek(skip)
        offset = skip
        try:
            while block := src.read(1 << 20):
                text = decoder.decode(block)
                offset += len(block)
                if "\0" in text:
                    raise FileRejected(path, f"not a CSV export: a NUL character in the {codec} text; " + FIX)
                data = text.encode("utf-8")
                newlines += data.count(b"\n")
                out.write(data)
            out.write(decoder.decode(b"", final=True).encode("utf-8"))
        except UnicodeDecodeError as err:
            target.unlink(missing_ok=True)
            raise FileRejected(
                path, f"bytes near byte {offset:,} are not valid {codec} text; " + FIX
            ) from err
    copy.unlink(missing_ok=True)
    _check_line_ends(path, target, newlines)
    return target, newlines


def _check_line_ends(path: Path, copy: Path, newlines: int) -> None:
    """Bare CR line ends (classic Mac) would make the whole file one line: said, not guessed."""
    if newlines == 0:
        with copy.open("rb") as f:
            if b"\r" in f.read(1 << 16):
                raise FileRejected(
                    path,
                    "line ends are bare CR characters (classic Mac), so the file reads as one line; save "
                    "it as CSV with Windows or Unix line ends and drop the new file in the folder",
                )


# --------------------------------------------------------------------------- parsing


def sniff(path: Path, head: bytes | None = None) -> str:
    """``'csv'`` or ``'xlsx'`` from the file's content and name; raises :class:`FileRejected`.

    ``head``: the file's first 64 KiB, if already read. A workbook saved under a ``.csv`` name is
    read as the workbook it is (and said in the batch's message).
    """
    if head is None:
        with path.open("rb") as f:
            head = f.read(1 << 16)
    if not head or not head.lstrip(codecs.BOM_UTF8 + b" \t\r\n"):
        raise FileRejected(path, "empty file (no header, no rows); " + FIX)
    for magic, what in _BINARY_MAGIC.items():
        if head.startswith(magic):
            raise FileRejected(path, f"not a CSV or XLSX export: the content is {what}; " + FIX)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise FileRejected(
            path,
            f"unsupported file type {suffix or '(none)'}: expected .csv or .xlsx; save the export as one "
            "of them, or move the file out of the folder",
        )
    if head.startswith(_ZIP_MAGIC):
        return "xlsx"
    if suffix == ".xlsx":
        raise FileRejected(path, "not a valid XLSX file (not a zip archive); " + FIX)
    utf16 = head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    if b"\0" in head and not utf16:
        raise FileRejected(path, "not a CSV export: binary content (NUL bytes); " + FIX)
    if _MARKUP.match(head.removeprefix(codecs.BOM_UTF8)):
        raise FileRejected(
            path,
            "not a CSV export: the content is an HTML or XML document (a web page or an Excel 'XML "
            "spreadsheet' saved under a .csv name?); save the export as CSV UTF-8 or XLSX and drop the "
            "new file in the folder",
        )
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
        records = _csv_records(path, name, report, limits, spec)
    else:
        sheet_bytes = _check_zip(path, name, limits)
        if xlsx_reader == "openpyxl" or sheet_bytes > limits.xlsx_fast_max_bytes:
            report.reader = "openpyxl"
            records = _xlsx_records_openpyxl(path, name, report, limits, spec)
        else:
            report.reader = "calamine"
            if sheet_bytes > limits.xlsx_child_min_bytes:
                # calamine holds the whole sheet: let a child process hold it (include/extract/xlsx_child.py)
                from include.extract import xlsx_child

                yield from xlsx_child.iter_chunks(path, name, report, limits, chunk_rows, spec)
                return
            records = _xlsx_records(path, name, report, limits, spec)
    yield from _chunked(records, chunk_rows, spec)


def read_xlsx_chunks(
    path: Path, name: Path, report: ParseReport, limits: Limits, chunk_rows: int, spec: ColumnSpec
) -> Iterator[Chunk]:
    """The first worksheet's chunks, read with python-calamine in this process (what
    :mod:`include.extract.xlsx_child` runs in its child)."""
    yield from _chunked(_xlsx_records(path, name, report, limits, spec), chunk_rows, spec)


def _header_positions(
    path: Path, header: list, report: ParseReport, limits: Limits, spec: ColumnSpec = EXPORT_SPEC
) -> list[int]:
    if len(header) > limits.max_columns:
        raise FileRejected(
            path,
            f"the header has {len(header):,} columns, more than an export may have ({limits.max_columns}, "
            "EXPORT_MAX_COLUMNS); " + FIX,
        )
    names = [(h or "").strip() if isinstance(h, str) else ("" if h is None else str(h)) for h in header]
    if spec is not EXPORT_SPEC:
        return _spec_positions(path, names, report, spec)
    missing = [c for c in CONTRACT_COLUMNS if c not in names]
    if missing:
        joined = ",".join(names)
        for sep, what in ((";", "semicolons"), ("\t", "tabs"), ("|", "vertical bars")):
            if sep in joined and sum(c in joined for c in CONTRACT_COLUMNS) > len(CONTRACT_COLUMNS) // 2:
                raise FileRejected(
                    path,
                    f"the columns are separated by {what}, not commas (a regional Excel setting?); save "
                    "it as CSV (comma delimited) and drop the new file in the folder",
                )
        if not any(c in names for c in CONTRACT_COLUMNS):
            raise FileRejected(
                path,
                "not an assessment export: the first row has none of the contract columns "
                f"({', '.join(CONTRACT_COLUMNS[:3])}, …); export it again from the assessment system",
            )
        raise FileRejected(
            path,
            f"header lacks contract columns: {', '.join(missing)} (spelled exactly as the assessment "
            "system spells them); " + FIX,
        )
    duplicated = sorted({c for c in CONTRACT_COLUMNS if names.count(c) > 1})
    if duplicated:
        raise FileRejected(
            path,
            f"header repeats contract columns: {', '.join(duplicated)} (which one holds the data?); " + FIX,
        )
    report.extra_columns = [n for n in names if n and n not in CONTRACT_COLUMNS]
    return [names.index(c) for c in CONTRACT_COLUMNS]


def too_many_rows(path: Path, limits: Limits) -> FileRejected:
    return FileRejected(
        path,
        f"more than {limits.max_rows:,} records (EXPORT_MAX_ROWS); split the export into smaller files, "
        "or raise the limit",
    )


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


# A record as the parsers produce it: (row number, fields or None, raw text or None, reject reason).
_Record = tuple[int, list | None, str | None, str | None]


def _chunked(
    records: Iterator[tuple[list[int], _Record]], chunk_rows: int, spec: ColumnSpec = EXPORT_SPEC
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


def _csv_records(
    path: Path, name: Path, report: ParseReport, limits: Limits, spec: ColumnSpec = EXPORT_SPEC
) -> Iterator[tuple[list[int], _Record]]:
    """The CSV's records, each judged as it is read (one loop, kept whole on purpose: every check
    of a record, the quote that swallows lines above all, needs the physical lines the reader
    consumed for it, which only this loop sees)."""
    with path.open("rb") as f:
        lines = _Lines(f)
        reader = csv.reader(lines)
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
        positions = _header_positions(name, header, report, limits, spec)
        width = len(header)
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
            spans = len(lines.current)
            if spans == 1 and any("\n" in v for v in fields):  # only a quote open at the end does that
                raise _swallowed(name, start, spans, row_no, "the quote is never closed")
            if spans > 1:
                if raw.count('"') % 2 == 1 or fields[-1].endswith("\n"):
                    raise _swallowed(name, start, spans, row_no, "the quote is never closed")
                if len(fields) != width:
                    raise _swallowed(
                        name, start, spans, row_no, f"{len(fields)} fields, the header has {width}"
                    )
                if any(_looks_like_records(v, width) for v in fields if "\n" in v):
                    raise _swallowed(name, start, spans, row_no, "its lines look like records of their own")
            last = (row_no, fields, raw)
            if lines.bad:
                yield positions, (row_no, None, raw, "undecodable bytes (not UTF-8)")
            elif len(fields) != width:
                yield positions, (row_no, None, raw, f"wrong field count: {len(fields)}, header has {width}")
            else:
                yield positions, (row_no, fields, None, None)
        if last is not None and not lines.last.endswith(b"\n") and _cut_short(last[1], last[2], width):
            raise FileRejected(
                name,
                f"truncated: the last record (row {last[0]}) ends mid-row (was the file copied whole?); "
                + FIX,
            )


def _looks_like_records(value: str, width: int) -> bool:
    """A quoted field holding a line with as many commas as a record: lines swallowed by a quote."""
    return any(line.count(",") >= width - 1 for line in value.split("\n")[1:])


def _cut_short(fields: list | None, raw: str, width: int) -> bool:
    """Whether a record with no final newline was cut: an open quote, or fewer fields than the header."""
    return raw.count('"') % 2 == 1 or fields is None or len(fields) < width


def _cell(value) -> str | None:
    """A spreadsheet cell as export text: dates dd/mm/yyyy, whole numbers without ``.0``, empty → None."""
    if value is None:
        return None
    if isinstance(value, dt.datetime | dt.date):
        return value.strftime("%d/%m/%Y")  # exports spell dates dd/mm/yyyy; Excel may have typed them
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value)
    return text if text != "" else None


def _check_zip(path: Path, name: Path, limits: Limits) -> int:
    """The workbook's parts, unpacked, must fit ``max_xlsx_uncompressed_bytes`` (a zip bomb does not).

    Returns the size of its largest worksheet, unpacked.
    """
    try:
        with zipfile.ZipFile(path) as z:
            parts = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise FileRejected(name, f"not a readable XLSX file (truncated or corrupt: {err}); " + FIX) from err
    names = [p.filename for p in parts]
    if "xl/workbook.xml" not in names:
        held = ", ".join(n for n in names[:3]) + (", …" if len(names) > 3 else "")
        raise FileRejected(
            name,
            f"not an XLSX workbook: a zip archive holding {held or 'nothing'}; if the export is inside, "
            "unzip it and drop the export itself in the folder",
        )
    unpacked = sum(p.file_size for p in parts)
    if unpacked > limits.max_xlsx_uncompressed_bytes:
        raise FileRejected(
            name,
            f"the workbook unpacks to {_mib(unpacked)}, more than an export may "
            f"({_mib(limits.max_xlsx_uncompressed_bytes)}, EXPORT_MAX_XLSX_UNCOMPRESSED_BYTES): a zip "
            "bomb, or an export to split into smaller files",
        )
    sheets = [p.file_size for p in parts if p.filename.startswith("xl/worksheets/")]
    if not sheets:
        raise FileRejected(name, "XLSX file has no worksheet (is it an XLSX workbook?); " + FIX)
    return max(sheets)


def _xlsx_rows(
    name: Path,
    header_and_rows: Iterator[tuple[int, list]],
    report: ParseReport,
    limits: Limits,
    spec: ColumnSpec = EXPORT_SPEC,
) -> Iterator[tuple[list[int], _Record]]:
    """Sheet rows (row number, cell values) as records: shared by both XLSX readers."""
    header = None
    for row_no, values in header_and_rows:
        if header is None:
            if all(v is None or v == "" for v in values):
                continue
            header = list(values)
            while header and (header[-1] is None or header[-1] == ""):
                header.pop()
            positions = _header_positions(name, header, report, limits, spec)
            width = len(header)
            continue
        cells = [_cell(v) for v in values]
        while len(cells) > width and cells[-1] is None:
            cells.pop()
        if not any(c is not None for c in cells):
            continue
        report.rows_read += 1
        if report.rows_read > limits.max_rows:
            raise too_many_rows(name, limits)
        if len(cells) > width:
            raw = csv_record(cells)
            yield positions, (row_no, None, raw, f"wrong field count: {len(cells)}, header has {width}")
            continue
        cells.extend([None] * (width - len(cells)))
        yield positions, (row_no, cells, None, None)
    if header is None:
        raise FileRejected(name, "empty file (no header, no rows); " + FIX)


def choose_sheet(
    name: Path, sheets: list[str], rows_of, report: ParseReport, spec: ColumnSpec = EXPORT_SPEC
) -> str:
    """The worksheet that holds the file's records: the only one whose header names columns of
    ``spec`` (default: the assessment export's).

    ``rows_of(sheet)`` iterates a sheet's rows (cell values). A workbook of one sheet is read as it
    is. Of several, the one whose first non-empty row names contract columns is read (a sheet of
    notes or a pivot beside it is ignored, and the batch's message says which sheet was read); if
    none does, the first (whose header is then rejected, saying why); if several do, the file is
    rejected: which one is the export cannot be guessed.
    """
    report.sheets = len(sheets)
    if len(sheets) == 1:
        return sheets[0]
    holding = [s for s in sheets if _names_columns(rows_of(s), spec.columns)]
    what = "export" if spec is EXPORT_SPEC else spec.what
    if len(holding) > 1:
        raise FileRejected(
            name,
            f"{len(holding)} worksheets hold {what} columns ({', '.join(repr(s) for s in holding)}): "
            f"which one is the {what} cannot be told; save each as a file of its own (or delete the "
            "other sheets) and drop the file(s) in the folder",
        )
    report.sheet = holding[0] if holding else sheets[0]
    return report.sheet


def _names_columns(rows, columns) -> bool:
    """Whether the first non-empty row (of the first :data:`SHEET_HEADER_SEARCH`) names one of ``columns``."""
    for n, values in enumerate(rows):
        if n >= SHEET_HEADER_SEARCH:
            return False
        cells = {str(v).strip() for v in values if v is not None and str(v).strip()}
        if cells:
            return bool(cells & set(columns))
    return False


def _xlsx_records(
    path: Path, name: Path, report: ParseReport, limits: Limits, spec: ColumnSpec = EXPORT_SPEC
) -> Iterator[tuple[list[int], _Record]]:
    """The export's worksheet (:func:`choose_sheet`) read with python-calamine (Rust; its cells are
    held in memory: about 1.4 times the sheet's unpacked XML, hence ``xlsx_fast_max_bytes``)."""
    import python_calamine

    try:
        book = python_calamine.CalamineWorkbook.from_path(str(path))
        sheets = [m.name for m in book.sheets_metadata if m.typ == python_calamine.SheetTypeEnum.WorkSheet]
        if not sheets:
            raise FileRejected(name, "XLSX file has no worksheet; " + FIX)
        loaded = {}

        def first_rows(sheet_name: str):
            loaded[sheet_name] = book.get_sheet_by_name(sheet_name)
            return loaded[sheet_name].iter_rows()

        chosen = choose_sheet(name, sheets, first_rows, report, spec)
        sheet = loaded.get(chosen) or book.get_sheet_by_name(chosen)
        loaded.clear()
    except FileRejected:
        raise
    except Exception as err:  # noqa: BLE001 - calamine raises its own XML, zip and value errors
        raise FileRejected(name, f"not a readable XLSX file ({type(err).__name__}: {err}); " + FIX) from err
    if sheet.total_height - 1 > limits.max_rows:
        raise too_many_rows(name, limits)
    if sheet.total_width > limits.max_columns + 50:  # the header's own count is checked exactly later
        raise FileRejected(
            name,
            f"the sheet has {sheet.total_width:,} columns, more than an export may have "
            f"({limits.max_columns}, EXPORT_MAX_COLUMNS); " + FIX,
        )
    start_col = sheet.start[1] if sheet.start else 0
    pad = [None] * start_col  # calamine's rows begin at the first used column

    def rows() -> Iterator[tuple[int, list]]:
        for row_no, values in enumerate(sheet.iter_rows(), start=1):  # rows from the sheet's first
            yield row_no, pad + values

    yield from _xlsx_rows(name, rows(), report, limits, spec)


def _xlsx_records_openpyxl(
    path: Path, name: Path, report: ParseReport, limits: Limits, spec: ColumnSpec = EXPORT_SPEC
) -> Iterator[tuple[list[int], _Record]]:
    """The export's worksheet (:func:`choose_sheet`) streamed with openpyxl (``read_only``): the
    reference reader, slower."""
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as err:  # noqa: BLE001 - openpyxl raises zip, XML, key and value errors
        raise FileRejected(name, f"not a readable XLSX file ({type(err).__name__}: {err}); " + FIX) from err
    try:
        if not book.worksheets:
            raise FileRejected(name, "XLSX file has no worksheet; " + FIX)
        sheets = {ws.title: ws for ws in book.worksheets}
        chosen = choose_sheet(
            name, list(sheets), lambda t: sheets[t].iter_rows(values_only=True), report, spec
        )
        rows = sheets[chosen].iter_rows(values_only=True)
        try:
            yield from _xlsx_rows(name, enumerate(rows, start=1), report, limits, spec)
        except FileRejected:
            raise
        except Exception as err:  # noqa: BLE001 - openpyxl raises assorted XML errors on a cut sheet
            raise FileRejected(
                name, f"not a readable XLSX file ({type(err).__name__}: {err}); " + FIX
            ) from err
    finally:
        book.close()


def _spec_positions(path: Path, names: list[str], report: ParseReport, spec: ColumnSpec) -> list[int]:
    """Header positions of ``spec.columns`` (-1: an optional column the file lacks)."""
    missing = [c for c in spec.required if c not in names]
    if missing:
        raise FileRejected(
            path,
            f"header lacks required columns of a {spec.what}: {', '.join(missing)}; nothing of the file "
            "was loaded; " + FIX,
        )
    duplicated = sorted({c for c in spec.columns if names.count(c) > 1})
    if duplicated:
        raise FileRejected(
            path, f"header repeats columns: {', '.join(duplicated)} (which one holds the data?); " + FIX
        )
    report.extra_columns = [n for n in names if n and n not in spec.columns]
    return [names.index(c) if c in names else -1 for c in spec.columns]
