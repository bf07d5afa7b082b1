"""python-calamine reads every XLSX export exactly as openpyxl does (the reader it replaced).

The loader reads XLSX with python-calamine (Rust, ~10x faster; figures in docs/LOADING.md). It is
adopted on this condition: the same records, values, row numbers and rejects as openpyxl on the
demo's XLSX export and on workbooks with the cells Excel really writes (dates typed as dates,
whole numbers stored as 1.0, empty and blank cells, text with leading zeros, formulas, booleans,
a header that does not start at A1, blank rows, spill-over cells).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from include.extract.chunks import iter_chunks
from include.extract.columns import CONTRACT_COLUMNS
from include.extract.limits import Limits
from include.extract.records import ParseReport
from include.extract.rejects import FileRejected


def read(path: Path, reader: str):
    report = ParseReport()
    chunks = list(iter_chunks(path, report, chunk_rows=1000, xlsx_reader=reader))
    return (
        [r for c in chunks for r in c.rows],
        [r for c in chunks for r in c.rejects],
        (report.rows_read, report.extra_columns),
    )


def assert_same(path: Path) -> int:
    calamine, openpyxl = read(path, "calamine"), read(path, "openpyxl")
    assert calamine == openpyxl
    return len(calamine[0])


def test_the_demo_xlsx_export_reads_identically(tmp_path):
    from include.demo import exports, plan

    programme = plan.build(2025, 1)
    (export,) = [e for e in exports.exports(programme) if e.name.endswith(".xlsx")]
    exports.write_file(programme.seed, export, tmp_path)
    assert assert_same(tmp_path / export.name) > 1000


def _row(quest, **cells):
    values = dict(
        zip(
            CONTRACT_COLUMNS,
            [
                "Pakistan",
                7,
                "Factory 7",
                quest,
                "01/02/2024",
                1,
                "NCQ",
                1,
                "Q",
                "Overtime",
                "Working Time",
                0,
                None,
                "Garment CAT",
            ],
            strict=True,
        )
    )
    values.update(cells)
    return [values[c] for c in CONTRACT_COLUMNS]


def test_edge_cells_read_identically(tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Export"
    sheet.append([])  # the header on row 3, from column B
    sheet.append([])
    sheet.append([None, *CONTRACT_COLUMNS, "Extra"])
    edge_rows = [
        _row(1, **{"Assesment.Start.Date": dt.datetime(2024, 2, 1)}),  # typed date
        _row(2, **{"Assesment.Start.Date": dt.date(2023, 12, 31), "Cycle": 2.0}),  # 2.0 as a number
        _row("0042", **{"Factory.Assessed.ID": "007"}),  # text with leading zeros
        _row(3, Finding=None, Tags=""),  # empty cells
        _row(4, Finding=1.5, **{"Q.Label": "  spaced  "}),  # a real decimal, spaces kept
        _row(5, Finding="=1+1", **{"Q.Label": "Überstunden – ‘paid’ اوور ٹائم"}),  # formula, no cached value
        _row(6, Finding=True),  # a boolean
        _row(7, **{"Assesment.Start.Date": dt.datetime(2024, 2, 29, 13, 45)}),  # a date with a time
        _row(8, **{"Assesment.Start.Date": "31/02/2024"}),  # impossible date: a reject
        _row(9, Finding=12345678901234.0),  # a large whole number
        _row(10, **{"Q.Label": "line one\nline two"}),
    ]
    for r in edge_rows:
        sheet.append([None, *r])
    sheet.append([])
    sheet.append([None, *_row(11), "x", "spill"])  # beyond the header's width: a reject
    sheet.append([None] * 20)
    sheet.append([None, *_row(12)])
    path = tmp_path / "edge.xlsx"
    book.save(path)
    rows, rejects, (read_count, extra) = read(path, "calamine")
    assert_same(path)
    by_quest = {r[3]: r for r in rows}
    assert by_quest["1"][4] == "01/02/2024" and by_quest["2"][4] == "31/12/2023" and by_quest["2"][5] == "2"
    assert by_quest["0042"][1] == "007" and by_quest["3"][11] is None and by_quest["3"][12] is None
    assert by_quest["4"][11] == "1.5" and by_quest["4"][8] == "  spaced  " and by_quest["6"][11] == "True"
    assert by_quest["9"][11] == "12345678901234" and by_quest["10"][8] == "line one\nline two"
    assert by_quest["1"][-1] == 4  # the sheet's row numbers, header on row 3
    assert [(r.source_row, r.reason.split(":")[0]) for r in rejects] == [
        (12, "impossible date in Assesment.Start.Date"),
        (16, "wrong field count"),
    ]
    assert read_count == 13 and extra == ["Extra"]


@pytest.mark.parametrize("reader", ["calamine", "openpyxl"])
def test_both_readers_reject_a_workbook_over_the_limits(tmp_path, reader):
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(list(CONTRACT_COLUMNS))
    for i in range(30):
        book.active.append(_row(i))
    path = tmp_path / "w.xlsx"
    book.save(path)
    with pytest.raises(FileRejected, match="more than 10 records"):
        list(iter_chunks(path, limits=Limits(max_rows=10), xlsx_reader=reader))
    with pytest.raises(FileRejected, match="unpacks to"):
        list(iter_chunks(path, limits=Limits(max_xlsx_uncompressed_bytes=1000), xlsx_reader=reader))


def test_a_sheet_too_large_for_memory_is_streamed_by_openpyxl(tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(list(CONTRACT_COLUMNS))
    book.active.append(_row(1))
    path = tmp_path / "w.xlsx"
    book.save(path)
    for limit, reader in ((1 << 20, "calamine"), (100, "openpyxl")):
        report = ParseReport()
        rows = [
            r for c in iter_chunks(path, report, limits=Limits(xlsx_fast_max_bytes=limit)) for r in c.rows
        ]
        assert report.reader == reader and len(rows) == 1


def test_a_large_sheet_is_read_in_a_child_process_with_the_same_result(tmp_path, monkeypatch):
    """Over ``xlsx_child_min_bytes`` calamine reads the sheet in a child process (so the loading
    process never holds the sheet): the same rows, rejects, counts and rejections as in-process."""
    from include.demo import exports, plan
    from include.extract import xlsx_child

    programme = plan.build(2025, 1)
    (export,) = [e for e in exports.exports(programme) if e.name.endswith(".xlsx")]
    exports.write_file(programme.seed, export, tmp_path)
    path = tmp_path / export.name

    children = []
    real = xlsx_child.iter_chunks
    monkeypatch.setattr(xlsx_child, "iter_chunks", lambda *a: children.append(a) or real(*a))

    def read_with(limits: Limits):
        report = ParseReport()
        chunks = list(iter_chunks(path, report, chunk_rows=1000, limits=limits))
        rows = [r for c in chunks for r in c.rows]
        rejects = [r for c in chunks for r in c.rejects]
        return rows, rejects, (report.reader, report.rows_read, report.extra_columns)

    here = read_with(Limits())
    assert children == []
    there = read_with(Limits(xlsx_child_min_bytes=0))
    assert len(children) == 1
    assert there == here and len(here[0]) > 1000
    with pytest.raises(FileRejected, match="more than 10 records") as err:
        list(iter_chunks(path, limits=Limits(max_rows=10, xlsx_child_min_bytes=0)))
    assert err.value.path.name == export.name and len(children) == 2
