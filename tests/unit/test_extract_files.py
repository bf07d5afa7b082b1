"""Parsing assessment exports: row-level rejects, whole-file rejects, CSV and XLSX."""

from __future__ import annotations

import codecs
import csv
import io
import shutil
from pathlib import Path

import pytest

from include.extract.chunks import iter_chunks
from include.extract.columns import CONTRACT_COLUMNS
from include.extract.landing import candidate_files, checksum
from include.extract.records import ParseReport
from include.extract.rejects import FileRejected

FIXTURE = Path(__file__).parent.parent / "fixtures" / "exports" / "sample_export.csv"


def row(quest: int = 1, question: int = 1, date: str = "01/02/2024", **overrides) -> list[str]:
    values = dict(
        zip(
            CONTRACT_COLUMNS,
            [
                "Pakistan",
                "7",
                "Factory 7",
                str(quest),
                date,
                "1",
                "NCQ",
                str(question),
                "A question",
                "Overtime",
                "Working Time",
                "0",
                "",
                "Garment CAT",
            ],
            strict=True,
        )
    )
    values.update(overrides)
    return [values[c] for c in CONTRACT_COLUMNS]


def write_csv(path: Path, rows: list[list[str]], header=CONTRACT_COLUMNS, bom=True, newline="\r\n") -> Path:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator=newline)
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + buf.getvalue().encode())
    return path


def parse(path: Path, chunk_rows: int = 50_000):
    report = ParseReport()
    chunks = list(iter_chunks(path, report, chunk_rows=chunk_rows))
    rows = [r for c in chunks for r in c.rows]
    rejects = [r for c in chunks for r in c.rejects]
    return rows, rejects, report


def test_fixture_parses_with_bom_and_crlf_into_contract_order():
    rows, rejects, report = parse(FIXTURE)
    assert len(rows) == 15 and not rejects
    assert report.kind == "csv" and report.rows_read == 15
    first = rows[0]
    assert first[0] == "Pakistan"  # the BOM is not part of the first column name or value
    assert first[-1] == 2  # header is row 1
    assert all(len(r) == len(CONTRACT_COLUMNS) + 1 for r in rows)
    assert not any(v.endswith("\r") for r in rows for v in r if isinstance(v, str))


def test_columns_in_another_order_and_extra_columns(tmp_path):
    header = ["Extra", *reversed(CONTRACT_COLUMNS)]
    path = write_csv(tmp_path / "x.csv", [["e", *reversed(row(quest=9))]], header=header)
    rows, rejects, report = parse(path)
    assert rows == [[*row(quest=9), 2]]
    assert report.extra_columns == ["Extra"]


def test_row_level_rejects_keep_the_rest_of_the_file(tmp_path):
    good = [row(quest=i) for i in range(1, 5)]
    path = tmp_path / "mixed.csv"
    write_csv(path, good[:2], bom=False)
    with path.open("ab") as f:
        f.write(b"only,three,fields\r\n")  # row 4
        f.write(",".join(row(quest=50, **{"Q.Label": "caf\xff"})).encode("latin-1") + b"\r\n")  # row 5
        f.write(",".join(row(quest=51, date="31/02/2024")).encode() + b"\r\n")  # row 6
        f.write(",".join(good[2]).encode() + b"\r\n" + ",".join(good[3]).encode() + b"\r\n")
    rows, rejects, report = parse(path, chunk_rows=2)
    assert [r[3] for r in rows] == ["1", "2", "3", "4"]
    assert [(r.source_row, r.reason.split(":")[0]) for r in rejects] == [
        (4, "wrong field count"),
        (5, "undecodable bytes (not UTF-8)"),
        (6, "impossible date in Assesment.Start.Date"),
    ]
    assert rejects[0].raw_text.startswith("only,three,fields")
    assert "31/02/2024" in rejects[2].reason
    assert report.rows_read == len(rows) + len(rejects) == 7


def test_quoted_newlines_and_a_final_row_without_newline(tmp_path):
    path = write_csv(tmp_path / "q.csv", [row(quest=1, **{"Q.Label": "two\nlines"}), row(quest=2)])
    path.write_bytes(path.read_bytes().rstrip(b"\r\n"))
    rows, rejects, _ = parse(path)
    assert [r[8] for r in rows] == ["two\nlines", "A question"] and not rejects


def test_header_only_is_a_valid_file_with_no_rows(tmp_path):
    rows, rejects, report = parse(write_csv(tmp_path / "h.csv", []))
    assert rows == [] and rejects == [] and report.rows_read == 0


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.csv", b"", "empty file"),
        ("bom_only.csv", b"\xef\xbb\xbf\r\n", "empty file"),
        ("report.csv", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "the content is a PDF document"),
        ("noise.csv", bytes(range(256)) * 4, "binary content"),
        ("fake.xlsx", b"Country,Cycle\n", "not a valid XLSX file"),
        ("notes.txt", b"hello", "unsupported file type .txt"),
        ("other.csv", b"name,value\nx,1\n", "none of the contract columns"),
    ],
)
def test_whole_file_rejects_name_the_file_and_reason(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(FileRejected) as err:
        parse(path)
    assert reason in str(err.value) and str(err.value).startswith(name)


def test_missing_contract_columns_are_named(tmp_path):
    header = [c for c in CONTRACT_COLUMNS if c not in ("Finding", "Cycle")]
    path = write_csv(tmp_path / "m.csv", [], header=header)
    with pytest.raises(FileRejected, match="header lacks contract columns: Cycle, Finding"):
        parse(path)


@pytest.mark.parametrize("cut", ['"cut mid quoted', "short,row"])
def test_truncated_csv_is_rejected_whole(tmp_path, cut):
    path = write_csv(tmp_path / "t.csv", [row(quest=1)])
    path.write_bytes(path.read_bytes() + ",".join(row(quest=2)[:8]).encode() + b"," + cut.encode())
    with pytest.raises(FileRejected, match="truncated"):
        parse(path)


def _xlsx(path: Path, rows: list[list]) -> Path:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(list(CONTRACT_COLUMNS))
    for r in rows:
        sheet.append(r)
    book.save(path)
    return path


def test_xlsx_streams_typed_cells_as_export_text(tmp_path):
    import datetime as dt

    typed = row(quest=3)
    typed[4] = dt.datetime(2024, 2, 1)  # Excel typed the date
    typed[5] = 2.0  # and the cycle as a number
    path = _xlsx(tmp_path / "e.xlsx", [row(quest=1), [], typed, [*row(quest=4), "spill"]])
    rows, rejects, report = parse(path)
    assert report.kind == "xlsx"
    assert [r[3] for r in rows] == ["1", "3"] and rows[1][4] == "01/02/2024" and rows[1][5] == "2"
    assert rows[1][-1] == 4  # sheet row number; the blank row 3 is not a record
    assert [(r.source_row, r.reason.split(":")[0]) for r in rejects] == [(5, "wrong field count")]


def test_truncated_xlsx_is_rejected_whole(tmp_path):
    path = _xlsx(tmp_path / "cut.xlsx", [row(quest=i) for i in range(200)])
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(FileRejected, match="cut.xlsx: not a readable XLSX file"):
        parse(path)


def test_checksum_ignores_the_name_and_candidates_skip_partial_files(tmp_path):
    folder = tmp_path / "assessments"
    folder.mkdir()
    a = shutil.copy(FIXTURE, folder / "a.csv")
    b = shutil.copy(FIXTURE, folder / "renamed.csv")
    (folder / "upload.csv.part").write_text("x")
    (folder / ".hidden.csv").write_text("x")
    (folder / "~$lock.xlsx").write_text("x")
    assert checksum(Path(a)) == checksum(Path(b))
    assert {p.name for p in candidate_files(folder)} == {"a.csv", "renamed.csv"}
    assert candidate_files(tmp_path / "missing") == []


def test_contract_csv_body_is_the_bytes_after_an_exact_contract_header(tmp_path):
    from include.extract.csv_fast_path import NotFastPath, contract_csv_body

    path = write_csv(tmp_path / "c.csv", [row(quest=1), row(quest=2)])
    body = b"".join(contract_csv_body(path, block_size=7))
    assert body == path.read_bytes().split(b"\r\n", 1)[1]
    other = write_csv(tmp_path / "o.csv", [row()], header=list(reversed(CONTRACT_COLUMNS)))
    assert contract_csv_body(other) is None  # another order: parsed row by row
    marker = write_csv(tmp_path / "m.csv", [row()])
    marker.write_bytes(marker.read_bytes() + b"\\.\r\n")
    with pytest.raises(NotFastPath):
        b"".join(contract_csv_body(marker, block_size=5))


def test_csv_record_quotes_like_csv():
    from include.extract.rejects import csv_record

    assert (
        csv_record(["a", None, 'say "hi"', "x,y", "two\nlines", ""]) == 'a,,"say ""hi""","x,y","two\nlines",'
    )


# --------------------------------------------------------------------------- landing


def _land(tmp_path, name: str, data: bytes, **limits):
    from include.extract.landing import land
    from include.extract.limits import Limits

    folder = tmp_path / "in"
    folder.mkdir(exist_ok=True)
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return land(path, work, Limits(**limits))


def _text(rows_, header=CONTRACT_COLUMNS) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows_)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("encoding", "data"),
    [
        ("utf-8", _text([row(**{"Q.Label": "naïve – ok"})]).encode()),
        ("utf-8 (BOM)", b"\xef\xbb\xbf" + _text([row(**{"Q.Label": "naïve – ok"})]).encode()),
        (
            "utf-16-le (BOM)",
            codecs.BOM_UTF16_LE + _text([row(**{"Q.Label": "naïve – ok"})]).encode("utf-16-le"),
        ),
        (
            "utf-16-be (BOM)",
            codecs.BOM_UTF16_BE + _text([row(**{"Q.Label": "naïve – ok"})]).encode("utf-16-be"),
        ),
        ("cp1252", _text([row(**{"Q.Label": "naïve – ok"})]).encode("cp1252")),
    ],
)
def test_land_detects_the_encoding_and_hands_over_utf8(tmp_path, encoding, data):
    import hashlib

    landed = _land(tmp_path, "x.csv", data)
    assert landed.rejected is None and landed.encoding == encoding
    assert landed.checksum == hashlib.sha256(data).hexdigest()  # of the bytes as landed
    rows_, rejects, _ = parse(landed.copy)
    assert rejects == [] and rows_[0][8] == "naïve – ok"
    assert landed.lines == 2


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xef\xbb\xbf" + _text([row()]).encode() + b"caf\xe9\r\n", "mixed encodings"),
        (_text([row(**{"Q.Label": "naïve"})]).encode() + "café\r\n".encode("cp1252"), "mixed encodings"),
        (_text([row()]).encode() + b"\x81\x8d\r\n", "neither UTF-8 nor Windows-1252"),
        (_text([row()] * 1000).encode() + b"\0\r\n", "NUL byte at byte"),
        (b"\xff\xfe\x00\x00" + "x".encode("utf-32-le"), "UTF-32"),
        (_text([row()]).replace("\r\n", "\r").encode(), "bare CR"),
    ],
)
def test_land_rejects_an_encoding_it_cannot_read_whole(tmp_path, data, reason):
    landed = _land(tmp_path, "x.csv", data)
    assert reason in landed.rejected and landed.copy is None and len(landed.checksum) == 64


def test_land_limits_and_a_workbook_under_a_csv_name(tmp_path):
    big = _land(tmp_path, "big.csv", _text([row()] * 100).encode(), max_bytes=1000)
    assert "EXPORT_MAX_BYTES" in big.rejected
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(list(CONTRACT_COLUMNS))
    book.save(tmp_path / "w.xlsx")
    landed = _land(tmp_path, "saved_as.csv", (tmp_path / "w.xlsx").read_bytes())
    assert landed.kind == "xlsx" and landed.copy.suffix == ".xlsx" and landed.rejected is None


def test_exported_on_from_the_name_else_the_modification_date(tmp_path):
    import datetime as dt
    import os

    from include.extract.landing import exported_on

    named = tmp_path / "bwpk_assessments_2025-12-22_corrections.csv"
    named.write_text("x")
    assert exported_on(named) == dt.date(2025, 12, 22)
    impossible = tmp_path / "x_2025-02-30_then_2024-01-05.csv"
    impossible.write_text("x")
    assert exported_on(impossible) == dt.date(2024, 1, 5)
    plain = tmp_path / "export.csv"
    plain.write_text("x")
    os.utime(plain, (1_700_000_000, 1_700_000_000))
    assert exported_on(plain) == dt.date(2023, 11, 14)


def test_ready_files_wait_for_a_young_file_to_settle(tmp_path):
    import os
    import threading
    import time

    from include.extract.landing import ready_files

    folder = tmp_path / "assessments"
    folder.mkdir()
    old = folder / "old_2024-01-01.csv"
    old.write_text("x")
    os.utime(old, (time.time() - 3600,) * 2)
    young = folder / "young_2024-01-02.csv"
    young.write_text("x")
    assert ready_files(folder, min_age_seconds=60, settle_seconds=0.2) == ([old, young], [])
    growing = folder / "growing_2024-01-03.csv"
    growing.write_text("x")
    stop = threading.Event()

    def grow():
        while not stop.is_set():
            with growing.open("a") as f:
                f.write("y")
            time.sleep(0.02)

    worker = threading.Thread(target=grow)
    worker.start()
    try:
        ready, waiting = ready_files(folder, min_age_seconds=60, settle_seconds=0.3)
    finally:
        stop.set()
        worker.join()
    assert ready == [old, young] and waiting == [growing]


def test_land_refuses_a_file_that_changes_while_read(tmp_path, monkeypatch):
    from include.extract import landing

    path = tmp_path / "x.csv"
    path.write_text(_text([row()]))
    real_stat = Path.stat
    calls = {"n": 0}

    def stat(self, *args, **kwargs):  # the second look finds another size: still being written
        result = real_stat(self, *args, **kwargs)
        if self == path:
            calls["n"] += 1
            if calls["n"] == 2:
                path.write_text(_text([row(), row(quest=2)]))
                result = real_stat(self, *args, **kwargs)
        return result

    monkeypatch.setattr(Path, "stat", stat)
    with pytest.raises(landing.NotReady, match="changed while it was read"):
        landing.land(path, tmp_path)
