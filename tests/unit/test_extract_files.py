"""Parsing assessment exports: row-level rejects, whole-file rejects, CSV and XLSX."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pytest

from include.extract_files import (
    CONTRACT_COLUMNS,
    FileRejected,
    ParseReport,
    candidate_files,
    checksum,
    iter_chunks,
)

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
    from include.extract_files import NotFastPath, contract_csv_body

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
    from include.extract_files import csv_record

    assert (
        csv_record(["a", None, 'say "hi"', "x,y", "two\nlines", ""]) == 'a,,"say ""hi""","x,y","two\nlines",'
    )
