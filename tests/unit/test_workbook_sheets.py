"""Which worksheet of a workbook is the export: both XLSX readers choose the same, or reject the file."""

from __future__ import annotations

import io

import openpyxl
import pytest

from include.extract.chunks import iter_chunks
from include.extract.columns import CONTRACT_COLUMNS
from include.extract.records import ParseReport
from include.extract.rejects import FileRejected


def workbook(path, sheets: dict[str, list[list]]):
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for r in rows:
            sheet.append(r)
    buf = io.BytesIO()
    book.save(buf)
    path.write_bytes(buf.getvalue())
    return path


ROW = [
    "Pakistan",
    "301",
    "F",
    "9",
    "01/02/2024",
    "1",
    "NCQ",
    "1",
    "Q",
    "Overtime",
    "Working Time",
    "0",
    "",
    "T",
]


@pytest.mark.parametrize("reader", ["calamine", "openpyxl"])
def test_the_sheet_with_the_export_header_is_read_beside_a_sheet_of_notes(tmp_path, reader):
    path = workbook(
        tmp_path / "x.xlsx", {"Notes": [["exported by"], ["someone"]], "Data": [list(CONTRACT_COLUMNS), ROW]}
    )
    report = ParseReport()
    chunks = list(iter_chunks(path, report, xlsx_reader=reader))
    assert [row[:-1] for c in chunks for row in c.rows] == [[v or None for v in ROW]]
    assert (report.sheet, report.sheets) == ("Data", 2)


@pytest.mark.parametrize("reader", ["calamine", "openpyxl"])
def test_two_sheets_holding_exports_are_not_guessed_between(tmp_path, reader):
    path = workbook(
        tmp_path / "x.xlsx", {"A": [list(CONTRACT_COLUMNS), ROW], "B": [list(CONTRACT_COLUMNS), ROW]}
    )
    with pytest.raises(FileRejected, match="2 worksheets hold export columns \\('A', 'B'\\)"):
        list(iter_chunks(path, xlsx_reader=reader))


@pytest.mark.parametrize("reader", ["calamine", "openpyxl"])
def test_a_workbook_of_one_sheet_is_read_as_it_is(tmp_path, reader):
    path = workbook(tmp_path / "x.xlsx", {"Whatever": [list(CONTRACT_COLUMNS), ROW]})
    report = ParseReport()
    assert sum(len(c.rows) for c in iter_chunks(path, report, xlsx_reader=reader)) == 1
    assert (report.sheet, report.sheets) == ("", 1)  # nothing to say in the batch's message


def test_a_zip_that_is_no_workbook_says_what_it_holds(tmp_path):
    import zipfile

    path = tmp_path / "x.xlsx"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("export.csv", "a,b\n")
    with pytest.raises(FileRejected, match="a zip archive holding export.csv; if the export is inside"):
        list(iter_chunks(path))
