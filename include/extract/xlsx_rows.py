"""A landed XLSX workbook's records: the sheet chosen, read by python-calamine or openpyxl.

The workbook's size unpacked is checked first (:func:`check_zip`); of several sheets, the one
whose header names the source's columns is read (:func:`choose_sheet`); cells become export text
(dates dd/mm/yyyy, whole numbers without ``.0``). Both readers yield the same records
(:func:`sheet_records`), row numbers being the sheet's.
"""

from __future__ import annotations

import datetime as dt
import zipfile
from collections.abc import Iterator
from pathlib import Path

from include.extract.columns import EXPORT_SPEC, ColumnSpec, header_positions
from include.extract.limits import Limits, mib, too_many_rows
from include.extract.records import ParseReport, Record
from include.extract.rejects import FIX, FileRejected, csv_record

SHEET_HEADER_SEARCH = 100  # rows of a worksheet looked at for its header when choosing the sheet


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


def check_zip(path: Path, name: Path, limits: Limits) -> int:
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
            f"the workbook unpacks to {mib(unpacked)}, more than an export may "
            f"({mib(limits.max_xlsx_uncompressed_bytes)}, EXPORT_MAX_XLSX_UNCOMPRESSED_BYTES): a zip "
            "bomb, or an export to split into smaller files",
        )
    sheets = [p.file_size for p in parts if p.filename.startswith("xl/worksheets/")]
    if not sheets:
        raise FileRejected(name, "XLSX file has no worksheet (is it an XLSX workbook?); " + FIX)
    return max(sheets)


def sheet_records(
    name: Path,
    header_and_rows: Iterator[tuple[int, list]],
    report: ParseReport,
    limits: Limits,
    spec: ColumnSpec = EXPORT_SPEC,
) -> Iterator[tuple[list[int], Record]]:
    """Sheet rows (row number, cell values) as records: shared by both XLSX readers."""
    header = None
    for row_no, values in header_and_rows:
        if header is None:
            if all(v is None or v == "" for v in values):
                continue
            header = list(values)
            while header and (header[-1] is None or header[-1] == ""):
                header.pop()
            positions = header_positions(name, header, report, limits, spec)
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


def calamine_records(
    path: Path, name: Path, report: ParseReport, limits: Limits, spec: ColumnSpec = EXPORT_SPEC
) -> Iterator[tuple[list[int], Record]]:
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

    yield from sheet_records(name, rows(), report, limits, spec)


def openpyxl_records(
    path: Path, name: Path, report: ParseReport, limits: Limits, spec: ColumnSpec = EXPORT_SPEC
) -> Iterator[tuple[list[int], Record]]:
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
            yield from sheet_records(name, enumerate(rows, start=1), report, limits, spec)
        except FileRejected:
            raise
        except Exception as err:  # noqa: BLE001 - openpyxl raises assorted XML errors on a cut sheet
            raise FileRejected(
                name, f"not a readable XLSX file ({type(err).__name__}: {err}); " + FIX
            ) from err
    finally:
        book.close()
