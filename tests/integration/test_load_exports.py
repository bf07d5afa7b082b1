"""Loading assessment exports into a real PostgreSQL warehouse, with real GX validation."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from include import db, load
from include.config import PROJECT_DIR
from include.extract.columns import CONTRACT_COLUMNS

FIXTURE = PROJECT_DIR / "tests" / "fixtures" / "exports" / "sample_export.csv"
CLUSTER_CP = [
    ("Working Time", "Overtime"),
    ("Compensation", "Overtime Wages"),
    ("Child Labour", "Child Labourers"),
]


def export_rows(assessments: int, questions: int = 3, first_quest: int = 1, date: str = "01/02/2024"):
    for q in range(first_quest, first_quest + assessments):
        for i in range(questions):
            cluster, cp = CLUSTER_CP[i % len(CLUSTER_CP)]
            yield [
                "Pakistan",
                str(100 + q % 50),
                f"Factory {100 + q % 50}",
                str(q),
                date,
                "1",
                "NCQ",
                str(i + 1),
                f"Question {i}",
                cp,
                cluster,
                str((q + i) % 2),
                "",
                "Garment CAT",
            ]


def write_export(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8-sig") as f:
        writer = csv.writer(f, lineterminator="\r\n")
        writer.writerow(CONTRACT_COLUMNS)
        writer.writerows(rows)
    return path


@pytest.fixture
def env(warehouse_db, tmp_path, monkeypatch):
    monkeypatch.setenv("DOCS_DIR", str(tmp_path / "docs"))
    monkeypatch.setenv("LANDING_SETTLE_SECONDS", "0.1")  # files written by the test are complete
    landing = tmp_path / "landing"
    (landing / "assessments").mkdir(parents=True)
    return warehouse_db, landing


def q(url: str, query: str, params=None):
    with db.connect(url) as conn:
        return conn.execute(query, params).fetchall()


def counts(url: str) -> dict:
    return {
        "raw": q(url, "select count(*) from raw.assessment_export_rows")[0][0],
        "quarantine": q(url, "select count(*) from quarantine.rejected_rows")[0][0],
        "batches": q(url, "select count(*) from audit.load_batches")[0][0],
    }


def assert_counts_add_up(url: str) -> None:
    for batch_id, read, loaded, quarantined, in_raw, in_quarantine in q(
        url,
        """
        select b.batch_id, b.rows_read, b.rows_loaded, b.rows_quarantined,
            (select count(*) from raw.assessment_export_rows r where r._batch_id = b.batch_id),
            (select count(*) from quarantine.rejected_rows r
             where r.batch_id = b.batch_id and r.source_row is not null)
        from audit.load_batches b
        """,
    ):
        assert read == loaded + quarantined, batch_id
        assert (loaded, quarantined) == (in_raw, in_quarantine), batch_id


def test_load_twice_and_a_renamed_copy_load_once(env):
    url, landing = env
    shutil.copy(FIXTURE, landing / "assessments" / "export_2024.csv")
    first = load.load_assessment_exports(url, landing)
    assert first["rows_loaded"] == 15 and first["batches"] == 1
    rows = q(
        url,
        'select "Quest.ID", "Question.ID", "Assesment.Start.Date", _source, _source_row, _batch_id '
        "from raw.assessment_export_rows order by _source_row",
    )
    assert rows[0][:5] == ("5001", "1000", "14/03/2023", "export_2024.csv", 2)
    before = counts(url)

    assert load.load_assessment_exports(url, landing)["batches"] == 0
    shutil.copy(FIXTURE, landing / "assessments" / "same_content_new_name.csv")
    again = load.load_assessment_exports(url, landing)
    assert again["batches"] == 0 and again["files_skipped_as_known"] == 2
    assert counts(url) == before

    status, checksum, read = q(url, "select status, checksum, rows_read from audit.load_batches")[0]
    assert status == "loaded" and len(checksum) == 64 and read == 15
    results = q(
        url,
        "select count(*), count(*) filter (where severity = 'critical' and not success) "
        "from audit.validation_results",
    )
    assert results[0][0] > 10 and results[0][1] == 0
    assert (Path(os.environ["DOCS_DIR"]) / "data_docs" / "index.html").exists()
    assert_counts_add_up(url)


def test_bad_inputs_are_rejected_or_quarantined_and_good_files_still_load(env):
    url, landing = env
    folder = landing / "assessments"
    write_export(folder / "a_good.csv", export_rows(10))
    (folder / "b_empty.csv").write_bytes(b"")
    (folder / "c_scan.csv").write_bytes(b"%PDF-1.4\n...")
    header = [c for c in CONTRACT_COLUMNS if c != "Cluster"]
    (folder / "d_no_cluster.csv").write_text(",".join(header) + "\r\n")
    cut = write_export(folder / "e_cut.csv", export_rows(3, first_quest=500))
    cut.write_bytes(cut.read_bytes() + b'Pakistan,1,F,999,01/02/2024,1,NCQ,1,"cut in the mid')
    mixed = write_export(folder / "f_mixed.csv", export_rows(2, first_quest=700))
    with mixed.open("ab") as f:
        f.write(b"too,few\r\n")
        f.write(b"Pakistan,1,F,801,01/02/2024,1,NCQ,1,Q,Overtime,Working Time,0,,Garment CAT\r\n")
        f.write(b"Pakistan,1,F,802,30/02/2024,1,NCQ,1,Q,Overtime,Working Time,0,,Garment CAT\r\n")
    # UTF-8 (its BOM says so) with one Windows-1252 byte: no single encoding reads every row
    latin = write_export(folder / "g_two_encodings.csv", export_rows(1, first_quest=900))
    with latin.open("ab") as f:
        f.write(b"Pakistan,1,Caf\xe9,901,01/02/2024,1,NCQ,1,Q,Overtime,Working Time,0,,Garment CAT\r\n")
    for i, name in enumerate(sorted(p.name for p in folder.iterdir())):
        os.utime(folder / name, (1_700_000_000 + i, 1_700_000_000 + i))  # load in name order

    with pytest.raises(load.LoadFailed) as err:
        load.load_assessment_exports(url, landing)
    message = str(err.value)
    for name, reason in [
        ("b_empty.csv", "empty file"),
        ("c_scan.csv", "PDF"),
        ("d_no_cluster.csv", "header lacks contract columns: Cluster"),
        ("e_cut.csv", "truncated"),
        ("g_two_encodings.csv", "mixed encodings"),
    ]:
        assert name in message and reason in message
    first_line = message.splitlines()[0]
    assert "rejected: b_empty.csv, c_scan.csv, d_no_cluster.csv, e_cut.csv, g_two_encodings.csv" in first_line
    # the assessments with a quarantined record are held, and named (the field-count reject has none)
    assert "1 assessment(s) held" in first_line and ": 802" in first_line and "f_mixed.csv" in first_line
    assert "a_good.csv" not in message

    batches = dict(q(url, "select source_object, status from audit.load_batches"))
    assert batches == {
        "a_good.csv": "loaded",
        "b_empty.csv": "rejected",
        "c_scan.csv": "rejected",
        "d_no_cluster.csv": "rejected",
        "e_cut.csv": "rejected",
        "f_mixed.csv": "loaded",
        "g_two_encodings.csv": "rejected",
    }
    assert dict(q(url, "select _source, count(*) from raw.assessment_export_rows group by 1")) == {
        "a_good.csv": 30,
        "f_mixed.csv": 7,
    }
    rejects = q(
        url,
        "select source, source_row, reason, raw_text, assessment_id from quarantine.rejected_rows "
        "where source = 'f_mixed.csv' order by source_row",
    )
    assert [(r[1], r[2].split(":")[0], r[4]) for r in rejects] == [
        (8, "wrong field count", None),
        (10, "impossible date in Assesment.Start.Date", "802"),
    ]
    assert rejects[0][3] == "too,few\r\n"
    assert q(
        url,
        "select rows_read, rows_loaded, rows_quarantined from audit.load_batches "
        "where source_object = 'f_mixed.csv'",
    ) == [(9, 7, 2)]
    # the whole-file rejects are in quarantine too, named and explained
    assert q(url, "select count(*) from quarantine.rejected_rows where source_row is null") == [(5,)]
    assert_counts_add_up(url)

    before = counts(url)
    assert load.load_assessment_exports(url, landing)["batches"] == 0  # processed content is not retried
    assert counts(url) == before


def test_a_critical_failure_quarantines_the_whole_batch_and_names_it(env):
    url, landing = env
    rows = list(export_rows(4))
    rows[3][6] = "XYZ"  # Question.type
    rows.append(list(rows[0]))  # Quest.ID x Question.ID twice
    write_export(landing / "assessments" / "bad_batch.csv", rows)
    write_export(landing / "assessments" / "good.csv", export_rows(2, first_quest=100))
    with pytest.raises(load.LoadFailed) as err:
        load.load_assessment_exports(url, landing)
    assert "bad_batch.csv" in str(err.value) and "quarantined" in str(err.value)
    assert "Question.type allowed values" in str(err.value)
    assert "Quest.ID x Question.ID unique in a file" in str(err.value)
    assert dict(q(url, "select _source, count(*) from raw.assessment_export_rows group by 1")) == {
        "good.csv": 6
    }
    ((batch_id, status, read, quarantined),) = q(
        url,
        "select batch_id, status, rows_read, rows_quarantined from audit.load_batches "
        "where source_object = 'bad_batch.csv'",
    )
    assert (status, read, quarantined) == ("quarantined", 13, 13)
    failed = q(
        url,
        "select expectation, unexpected_count, unexpected_values from audit.validation_results "
        "where batch_id = %s and severity = 'critical' and not success order by 1",
        (batch_id,),
    )
    assert [f[0] for f in failed] == [
        "Quest.ID x Question.ID unique in a file",
        "Question.type allowed values",
    ]
    assert failed[1][1] == 1 and failed[1][2] == ["XYZ"]
    assert q(url, "select count(*) from quarantine.rejected_rows where batch_id = %s", (batch_id,)) == [(13,)]
    assert_counts_add_up(url)


def test_warnings_are_recorded_and_loading_goes_on(env):
    url, landing = env
    rows = list(export_rows(2))
    rows[0][0] = "Bangladesh"  # Country: a warning
    rows[1][9] = "  OVERTIME   wages "  # a canonical point after normalising: no warning
    rows[2][9] = "Wages Overtime (old name)"  # not canonical: a warning
    write_export(landing / "assessments" / "w.csv", rows)
    summary = load.load_assessment_exports(url, landing)
    assert summary["rows_loaded"] == 6
    warned = dict(
        q(
            url,
            "select expectation, unexpected_count from audit.validation_results "
            "where severity = 'warning' and not success",
        )
    )
    assert warned["Country allowed values"] == 1
    assert warned["CP is a canonical name"] == 1
    assert warned["factory known to the registry"] == 2  # no registry loaded: factories 101 and 102
    message = q(url, "select message from audit.load_batches")[0][0]
    assert "warnings:" in message and "Country allowed values" in message


def test_latest_export_is_loaded_last_and_xlsx_loads(env):
    import openpyxl

    url, landing = env
    older = write_export(landing / "assessments" / "z_older.csv", export_rows(1))
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(list(CONTRACT_COLUMNS))
    corrected = list(export_rows(1))
    corrected[0][11] = "1" if corrected[0][11] == "0" else "0"
    for r in corrected:
        sheet.append(r)
    newer = landing / "assessments" / "a_newer.xlsx"
    book.save(newer)
    os.utime(older, (1_700_000_000, 1_700_000_000))
    load.load_assessment_exports(url, landing)
    order = q(url, "select source_object from audit.load_batches order by batch_id")
    assert [o[0] for o in order] == ["z_older.csv", "a_newer.xlsx"]
    latest = q(
        url,
        """select distinct on ("Quest.ID", "Question.ID") "Finding" from raw.assessment_export_rows
                      where "Question.ID" = '1' order by "Quest.ID", "Question.ID", _batch_id desc""",
    )
    assert latest == [(corrected[0][11],)]


CRASH_SCRIPT = """
import sys
from pathlib import Path
from include import load
load.load_assessment_exports(sys.argv[1], Path(sys.argv[2]))
"""


def test_a_process_killed_mid_copy_leaves_nothing_and_the_rerun_loads_once(env, tmp_path):
    url, landing = env
    n_assessments = 60_000
    write_export(landing / "assessments" / "big.csv", export_rows(n_assessments, questions=5))
    expected = n_assessments * 5
    child = subprocess.Popen(
        [sys.executable, "-c", CRASH_SCRIPT, url, str(landing)],
        cwd=PROJECT_DIR,
        env={**os.environ, "PYTHONPATH": str(PROJECT_DIR)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    killed_mid_copy = False
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and child.poll() is None:
            progress = q(
                url,
                "select tuples_processed from pg_stat_progress_copy p "
                "join pg_database d on d.oid = p.datid where d.datname = current_database()",
            )
            if progress and progress[0][0] > 0:
                child.send_signal(signal.SIGKILL)
                killed_mid_copy = True
                break
            time.sleep(0.01)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
    assert killed_mid_copy, child.stderr.read().decode()[-2000:]

    assert q(url, "select count(*) from raw.assessment_export_rows") == [(0,)]
    assert q(url, "select status from audit.load_batches") == [("staging",)]
    # the killed session may take a moment to end on the server; its lock goes with it
    summary = load.load_assessment_exports(url, landing)
    assert summary["rows_loaded"] == expected
    assert q(url, "select status from audit.load_batches order by batch_id") == [("abandoned",), ("loaded",)]
    assert q(url, "select count(*), count(distinct _source_row) from raw.assessment_export_rows") == [
        (expected, expected)
    ]
    assert q(url, "select count(*) from pg_tables where schemaname = 'stage'") == [(0,)]
    assert load.load_assessment_exports(url, landing)["batches"] == 0
    assert q(url, "select count(*) from raw.assessment_export_rows") == [(expected,)]


def _raw_rows(url: str, source: str) -> list[tuple]:
    cols = ", ".join(f'"{c}"' for c in CONTRACT_COLUMNS)
    return q(
        url,
        f"select {cols}, _source_row from raw.assessment_export_rows where _source = %s order by _source_row",
        (source,),
    )


def test_copy_fast_path_and_row_parser_agree(env, caplog):
    """The same records through COPY (contract header) and the Python parser (other column order)."""
    url, landing = env
    rows = list(export_rows(3))
    rows[1][8] = "two\nlines, and a comma"  # a quoted record spanning two physical lines
    rows[2][12] = ""  # empty Tags
    rows[4][4] = "31/02/2024"  # impossible date: quarantined alone
    fast = write_export(landing / "assessments" / "a_fast.csv", rows)
    fast.write_bytes(
        fast.read_bytes().replace(b",,Garment CAT\r\n", b',"",Garment CAT\r\n', 1)
    )  # quoted empty
    order = list(reversed(range(len(CONTRACT_COLUMNS))))
    slow = landing / "assessments" / "b_slow.csv"
    with slow.open("w", newline="", encoding="utf-8-sig") as f:
        writer = csv.writer(f, lineterminator="\r\n")
        writer.writerow([CONTRACT_COLUMNS[i] for i in order])
        writer.writerows([[r[i] for i in order] for r in rows])
    os.utime(slow, (1_800_000_000, 1_800_000_000))
    caplog.set_level("INFO", logger="include.load")
    with pytest.raises(load.LoadFailed, match="held"):  # the impossible date holds assessment 2
        load.load_assessment_exports(url, landing)
    assert "a_fast.csv: COPY refused" not in caplog.text  # the contract header took the fast path
    assert "(parsed row by row)" in caplog.text  # b_slow.csv, columns in another order
    fast_rows, slow_rows = _raw_rows(url, "a_fast.csv"), _raw_rows(url, "b_slow.csv")
    assert fast_rows == slow_rows and len(fast_rows) == 8
    assert [r[-1] for r in fast_rows] == [2, 3, 4, 5, 7, 8, 9, 10]  # record numbers, header = 1
    assert fast_rows[1][8] == "two\nlines, and a comma"
    assert fast_rows[0][12] is None and fast_rows[2][12] is None  # quoted "" and empty: both null
    rejects = q(
        url,
        "select source, source_row, raw_text, reason from quarantine.rejected_rows order by source",
    )
    assert [r[1:] for r in rejects if r[0] == "a_fast.csv"] == [
        (6, ",".join(rows[4]), "impossible date in Assesment.Start.Date: '31/02/2024'")
    ]
    assert [(r[1], r[3]) for r in rejects if r[0] == "b_slow.csv"] == [(6, rejects[0][3])]
    # published by ATTACH: each batch is a partition of raw; nothing is left in stage
    assert q(
        url,
        "select count(*) from pg_inherits where inhparent = 'raw.assessment_export_rows'::regclass"
        " and inhrelid::regclass::text like 'raw.assessment_export_rows_b%%'",
    ) == [(2,)]
    assert q(url, "select count(*) from pg_class where relnamespace = 'stage'::regnamespace") == [(0,)]
    assert_counts_add_up(url)


def test_a_file_copy_refuses_falls_back_to_the_row_parser(env, caplog):
    url, landing = env
    path = write_export(landing / "assessments" / "x.csv", export_rows(2))
    with path.open("ab") as f:
        f.write(b"\\.\r\n")  # COPY's end-of-data marker: must not end the load silently
        f.write(b"Pakistan,1,F,900,01/02/2024,1,NCQ,1,Q,Overtime,Working Time,0,,Garment CAT\r\n")
        f.write(b"Pakistan,1,F,901,01/02/2024,1,NCQ,1,Q,Overtime,Working Time,0,Garment CAT\r\n")
    caplog.set_level("INFO", logger="include.load")
    with pytest.raises(load.LoadFailed, match="1 assessment.s. held .*: 901"):
        load.load_assessment_exports(url, landing)
    assert "x.csv: COPY refused the file" in caplog.text
    assert q(url, "select rows_read, rows_loaded, rows_quarantined from audit.load_batches") == [(9, 7, 2)]
    assert [r[0].split(":")[0] for r in q(url, "select reason from quarantine.rejected_rows order by 1")] == [
        "wrong field count",
        "wrong field count",
    ]
    assert_counts_add_up(url)


def test_transformer_reads_the_partitioned_raw_table(env):
    url, landing = env
    write_export(landing / "assessments" / "t.csv", export_rows(2))
    load.load_assessment_exports(url, landing)
    with db.connect(url, role="transformer") as conn:
        assert conn.execute("select count(*) from raw.assessment_export_rows").fetchone()[0] == 6


def _statistics(url: str) -> dict[str, tuple[float, int]]:
    """Per export table (the whole and each partition): the rows its last ANALYZE found (-1: never
    analysed) and how many times ANALYZE ran on it."""
    query = """
        select c.relname, c.reltuples, coalesce(s.analyze_count, 0)
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        left join pg_stat_user_tables s on s.relid = c.oid
        where n.nspname = 'raw' and c.relname like 'assessment\\_export\\_rows%'
          and c.relname <> 'assessment_export_rows_default'
    """
    return {name: (rows, runs) for name, rows, runs in q(url, query)}


def test_each_load_analyses_its_new_partitions_and_the_whole_table_only_once_it_has_grown(env):
    """Fresh statistics before dbt reads raw, at a cost that follows what was loaded (issue 13)."""
    url, landing = env
    folder = landing / "assessments"
    whole = "assessment_export_rows"
    write_export(folder / "a_2024-01-01.csv", export_rows(100))
    load.load_assessment_exports(url, landing)
    first = _statistics(url)
    (partition_a,) = set(first) - {whole}
    assert first[whole] == (300, 1) and first[partition_a] == (300, 1)  # one pass covered both

    # 3 % more rows: the new partition alone; the whole table's statistics are still close enough
    write_export(folder / "b_2024-02-01.csv", export_rows(3, first_quest=1000))
    load.load_assessment_exports(url, landing)
    second = _statistics(url)
    (partition_b,) = set(second) - set(first)
    assert second[partition_b] == (9, 1)
    assert second[whole] == first[whole] and second[partition_a] == first[partition_a]

    # then 50 % more: the whole table again, which finds every row
    write_export(folder / "c_2024-03-01.csv", export_rows(50, first_quest=2000))
    load.load_assessment_exports(url, landing)
    third = _statistics(url)
    assert third[whole] == (300 + 9 + 150, 2)


def test_bootstrap_turns_an_old_plain_raw_table_into_the_default_partition(fresh_database, monkeypatch):
    from include import warehouse

    monkeypatch.setenv("PSEUDONYM_KEY", "test-key-not-secret-0123456789abcdef")
    cols = ", ".join(f'"{c}" text' for c in CONTRACT_COLUMNS)
    with db.connect(fresh_database) as conn:
        conn.execute("create schema raw")
        conn.execute(
            f"create table raw.assessment_export_rows ({cols}, _batch_id bigint not null,"
            " _source text not null, _source_row bigint not null,"
            " _loaded_at timestamptz not null default now())"
        )
        conn.execute(
            'insert into raw.assessment_export_rows ("Quest.ID", _batch_id, _source, _source_row)'
            " values ('1', 7, 'old.csv', 2)"
        )
    warehouse.bootstrap(fresh_database)
    warehouse.bootstrap(fresh_database)  # idempotent
    assert q(
        fresh_database,
        "select relkind::text from pg_class where oid = 'raw.assessment_export_rows'::regclass",
    ) == [("p",)]
    assert q(fresh_database, 'select "Quest.ID", _batch_id from raw.assessment_export_rows') == [("1", 7)]


def test_a_run_that_dies_during_validation_leaves_nothing_and_the_rerun_loads_once(env, monkeypatch):
    """Files are staged, then validated together: a death there (its view left behind) loses nothing."""
    from include.validate import suites as validate

    url, landing = env
    write_export(landing / "assessments" / "a.csv", export_rows(3))
    write_export(landing / "assessments" / "b.csv", export_rows(2, first_quest=50))

    class Killed(BaseException):
        """What the process sees of a kill: nothing it may catch as a file's fault."""

    def dies(url_, entity, schema, tables):
        with db.connect(url_) as conn:  # what a process killed mid-validation leaves: its union view
            conn.execute(
                f"create view {schema}.run_{min(tables)}_{max(tables)} as "
                + " union all ".join(f"select * from {schema}.{t}" for t in tables.values())
            )
        raise Killed("killed during validation")

    monkeypatch.setattr(validate, "validate_batches", dies)
    with pytest.raises(Killed, match="killed during validation"):
        load.load_assessment_exports(url, landing)
    assert q(url, "select count(*) from raw.assessment_export_rows") == [(0,)]
    assert q(url, "select status from audit.load_batches order by batch_id") == [("staging",), ("staging",)]

    monkeypatch.undo()
    summary = load.load_assessment_exports(url, landing)
    assert summary["rows_loaded"] == 15
    assert [s for (s,) in q(url, "select status from audit.load_batches order by batch_id")] == [
        "abandoned",
        "abandoned",
        "loaded",
        "loaded",
    ]
    assert q(
        url,
        "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = 'stage' and c.relkind in ('r', 'v', 'S')",  # tables, views, sequences
    ) == [(0,)]
    assert_counts_add_up(url)
