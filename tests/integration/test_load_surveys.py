"""The survey loader on a throwaway warehouse, without GX (cheap): what happens to whole files.

The hand-made fixture's build (test_marts_handmade.py) runs the same loader with its GX suites and
tests what the warehouse then holds (latest file wins, consent, crosswalk, the under-14 warning).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from include import db, load
from include.load import surveys as load_surveys

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _landing(tmp_path: Path, *files: Path) -> Path:
    folder = tmp_path / "landing" / "surveys"
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy2(f, folder / f.name)
    return tmp_path / "landing"


def _load(url: str, landing: Path) -> dict:
    return load_surveys.load_survey_files(url, landing, validate=False, min_age_seconds=0, settle_seconds=0)


def _rows(url: str, query: str) -> list[tuple]:
    with db.connect(url) as conn:
        return conn.execute(query).fetchall()


def test_a_file_missing_a_required_column_is_rejected_whole_naming_it(warehouse_db, tmp_path):
    bad = FIXTURES / "surveys_bad" / "manager_wave2_2024-07-01.csv"
    landing = _landing(tmp_path, bad)
    with pytest.raises(load.LoadFailed) as err:
        _load(warehouse_db, landing)
    assert "manager_wave2_2024-07-01.csv" in str(err.value) and "factory_id" in str(err.value)
    batch = _rows(
        warehouse_db,
        "select source, source_object, status, message, rows_loaded from audit.load_batches",
    )
    assert len(batch) == 1
    source, name, status, message, loaded = batch[0]
    assert (source, name, status, loaded) == ("survey_files", bad.name, "rejected", 0)
    assert message.startswith("header lacks required columns of a manager survey export: factory_id")
    reasons = _rows(warehouse_db, "select source, reason from quarantine.rejected_rows")
    assert reasons == [(bad.name, "whole source rejected: " + message)]
    assert _rows(warehouse_db, "select count(*) from raw.survey_manager_rows") == [(0,)]
    # the same bytes are not examined again on the next run
    assert _load(warehouse_db, landing)["files_skipped_as_known"] == 1


def test_a_file_whose_name_does_not_say_the_instrument_is_rejected(warehouse_db, tmp_path):
    source = FIXTURES / "handmade" / "surveys" / "manager_wave2_2024-06-10.csv"
    folder = _landing(tmp_path) / "surveys"
    shutil.copy2(source, folder / "export_2024-06-10.csv")
    with pytest.raises(load.LoadFailed, match="export_2024-06-10.csv"):
        _load(warehouse_db, folder.parent)
    (message,) = _rows(warehouse_db, "select message from audit.load_batches")[0]
    assert "does not say the instrument and wave" in message


def test_every_file_loads_once_and_rows_add_up(warehouse_db, tmp_path):
    files = sorted((FIXTURES / "handmade" / "surveys").iterdir())
    landing = _landing(tmp_path, *files)
    first = _load(warehouse_db, landing)
    assert first["batches"] == 5 and first["rows_loaded"] == 21 and first["rows_quarantined"] == 0
    assert set(first["tables_loaded"]) == {"raw.survey_worker_rows", "raw.survey_manager_rows"}
    batches = _rows(
        warehouse_db,
        "select status, rows_read, rows_loaded, rows_quarantined, exported_on::text from audit.load_batches"
        " where source = 'survey_files' order by batch_id",
    )
    assert all(b[0] == "loaded" and b[1] == b[2] + b[3] for b in batches)
    # taken in export order (the date in the name), whatever the type: the re-export comes last of wave 1
    assert [b[4] for b in batches] == ["2023-03-20", "2023-03-20", "2023-04-10", "2024-06-10", "2024-06-10"]
    # a second run, and a renamed copy of a loaded file, load nothing
    shutil.copy2(files[0], landing / "surveys" / ("copy_of_" + files[0].name))
    second = _load(warehouse_db, landing)
    assert second["rows_loaded"] == 0 and second["files_skipped_as_known"] == 6
    assert _rows(warehouse_db, "select count(*) from raw.survey_worker_rows") == [(15,)]


def test_a_quarantined_worker_record_keeps_no_name_or_phone(warehouse_db, tmp_path):
    source = FIXTURES / "handmade" / "surveys" / "worker_wave1_2023-03-20.csv"
    text = source.read_bytes().decode("utf-8-sig").splitlines()
    text[2] = text[2] + ",one field too many"  # w1b's record: wrong field count, quarantined alone
    folder = _landing(tmp_path) / "surveys"
    (folder / source.name).write_text("\n".join(text) + "\n", encoding="utf-8-sig")
    summary = _load(warehouse_db, folder.parent)
    assert summary["rows_loaded"] == 6 and summary["rows_quarantined"] == 1
    (raw_text, reason) = _rows(warehouse_db, "select raw_text, reason from quarantine.rejected_rows")[0]
    assert reason.startswith("wrong field count")
    assert "Zzsurvey" not in raw_text and "+92" not in raw_text and raw_text.startswith("masked:")


def test_a_file_with_a_duplicated_uuid_is_held_by_gx_with_names_masked(warehouse_db, tmp_path, monkeypatch):
    """The one test here that runs the GX suite: a critical rule holds the whole file in quarantine,
    and the held rows there carry no name or phone in clear."""
    monkeypatch.setenv("DOCS_DIR", str(tmp_path / "docs"))
    source = FIXTURES / "handmade" / "surveys" / "worker_wave1_2023-03-20.csv"
    lines = source.read_bytes().decode("utf-8-sig").splitlines()
    lines[2] = lines[2].replace("w1b,", "w1a,", 1)  # two submissions with one _uuid
    folder = _landing(tmp_path) / "surveys"
    (folder / source.name).write_text("\r\n".join(lines) + "\r\n", encoding="utf-8-sig")
    with pytest.raises(load.LoadFailed, match="worker_wave1_2023-03-20.csv"):
        load_surveys.load_survey_files(warehouse_db, folder.parent, min_age_seconds=0, settle_seconds=0)
    status, read, loaded, held, message = _rows(
        warehouse_db,
        "select status, rows_read, rows_loaded, rows_quarantined, message from audit.load_batches",
    )[0]
    assert (status, read, loaded, held) == ("quarantined", 7, 0, 7)
    assert "_uuid unique in a file" in message
    quarantined = _rows(warehouse_db, "select raw_text from quarantine.rejected_rows order by source_row")
    assert len(quarantined) == 7
    assert all("Zzsurvey" not in t and "+92 301" not in t and "masked:" in t for (t,) in quarantined)
    assert _rows(warehouse_db, "select count(*) from raw.survey_worker_rows") == [(0,)]
