"""The demo generator's pure parts: catalogue from the seeds, plan, export files (no database)."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
from pathlib import Path

import openpyxl
import pytest

from include.demo import catalogue, exports, plan, xlsx
from include.extract.chunks import iter_chunks
from include.extract.columns import CONTRACT_COLUMNS


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_catalogue_is_read_from_the_dbt_seeds():
    points = catalogue.read_points()
    assert len({cluster for cluster, _ in points}) == 8
    assert ("Occupational Safety and Health", "OSH Management Systems") in points
    aliases = catalogue.read_aliases()
    canonical = {cp for _, cp in points}
    assert set(aliases) <= canonical, "every alias names a canonical point"
    assert aliases["OSH Management Systems"] == "Occupational Safety and Health Management Systems"


def test_tool_versions_have_disjoint_question_ids_and_v1_uses_older_names():
    tools = catalogue.tools()
    v1, v2 = tools[catalogue.TOOL_V1], tools[catalogue.TOOL_V2]
    assert not {q.question_id for q in v1.questions} & {q.question_id for q in v2.questions}
    for tool in (v1, v2):
        assert 200 <= len(tool.questions) <= 260
        assert any(q.qtype == "FGW" for q in tool.questions)
    v1_labels = {q.cp_label for q in v1.questions if q.qtype == "NCQ"}
    v2_labels = {q.cp_label for q in v2.questions if q.qtype == "NCQ"}
    assert "Occupational Safety and Health Management Systems" in v1_labels
    assert "Contracts" in v1_labels
    assert v2_labels == {cp for _, cp in catalogue.read_points()}


def test_noncompliance_falls_with_each_cycle_and_is_highest_in_osh_working_time_compensation():
    points = dict((cp, cl) for cl, cp in catalogue.read_points())
    for cp, cl in points.items():
        assert catalogue.rate(cp, cl, 3) < catalogue.rate(cp, cl, 2) < catalogue.rate(cp, cl, 1) or (
            catalogue.rate(cp, cl, 1) == 0
        )
    by_cluster: dict[str, list[float]] = {}
    for cp, cl in points.items():
        by_cluster.setdefault(cl, []).append(catalogue.rate(cp, cl, 1))
    mean = {cl: sum(v) / len(v) for cl, v in by_cluster.items()}
    top3 = sorted(mean, key=mean.get, reverse=True)[:3]
    assert set(top3) == {"Occupational Safety and Health", "Working Time", "Compensation"}
    assert max(mean["Child Labour"], mean["Forced Labour"]) < 0.05


def test_plan_scale_multiplies_factories_and_assessments():
    for scale in (1, 3):
        p = plan.build(2025, scale)
        live = [f for f in p.factories if f.deleted_at is None]
        assert len(live) == 121 * scale
        assert len({f.factory_id for f in p.factories}) == len(p.factories)
        counted = [a for a in p.assessments if a.kind == "counted"]
        assert len(counted) == 184 * scale
        assert len({a.quest_id for a in p.assessments}) == len(p.assessments)


def test_plan_enrols_factories_and_assesses_them_within_2022_to_2025():
    p = plan.build(2025, 2)
    assert all(dt.date(2022, 1, 1) <= f.enrolled_on <= dt.date(2025, 12, 31) for f in p.factories)
    assert all(
        f.exited_on is None or f.enrolled_on < f.exited_on <= dt.date(2025, 12, 31) for f in p.factories
    )
    for f in p.factories:
        assert all(f.enrolled_on < day <= dt.date(2025, 12, 31) for day in f.assessment_dates)


def test_plan_is_deterministic_for_a_seed_and_differs_between_seeds():
    a, b, c = plan.build(7, 1), plan.build(7, 1), plan.build(8, 1)
    assert [x.start_date for x in a.assessments] == [x.start_date for x in b.assessments]
    assert [x.start_date for x in a.assessments] != [x.start_date for x in c.assessments]


def test_export_files_are_readable_by_the_extractor_and_byte_for_byte_reproducible(tmp_path):
    p = plan.build(2025, 1)
    files = exports.exports(p)
    assert files[-1].corrections and files[-1].issued_on == max(f.issued_on for f in files)
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    for folder in (first, second):
        for export in files:
            exports.write_file(p.seed, export, folder)
    for export in files:
        assert _sha(first / export.name) == _sha(second / export.name)
        rows = sum(len(chunk.rows) for chunk in iter_chunks(first / export.name))
        assert rows > 0
        assert rows == sum(len(catalogue.tools()[a.tool].questions) for a in export.assessments), (
            "one row per assessment x question"
        )
    kinds = {e.name.rsplit(".", 1)[1] for e in files}
    assert kinds == {"csv", "xlsx"}


def test_xlsx_writer_round_trips_strings_numbers_spaces_and_urdu(tmp_path):
    path = tmp_path / "x.xlsx"
    rows = [["a", "b", "c"], [1, " Overtime ", "کراچی گارمنٹس"], [None, "x & <y>", 3]]
    xlsx.write(path, rows, dt.date(2024, 1, 20))
    book = openpyxl.load_workbook(path, read_only=True)
    got = [list(r) for r in book.worksheets[0].iter_rows(values_only=True)]
    book.close()
    assert got == [["a", "b", "c"], [1, " Overtime ", "کراچی گارمنٹس"], [None, "x & <y>", 3]]


@pytest.mark.parametrize("seed", [2025, 11])
def test_csv_exports_have_bom_crlf_and_contract_header(tmp_path, seed):
    p = plan.build(seed, 1)
    export = next(e for e in exports.exports(p) if e.name.endswith(".csv"))
    exports.write_file(seed, export, tmp_path)
    raw = (tmp_path / export.name).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert raw.count(b"\r\n") == raw.count(b"\n")
    with (tmp_path / export.name).open(encoding="utf-8-sig", newline="") as f:
        assert tuple(next(csv.reader(f))) == CONTRACT_COLUMNS
