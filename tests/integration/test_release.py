"""A research release written from a real warehouse: files, dictionary, idempotence, the README's
recipe, and no source identifier in any file."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import hashlib
import re

import pandas as pd
import pyarrow.parquet as pq
import pytest

from include import db
from include.config import settings
from include.serve import release
from tests.integration.test_research import (  # noqa: F401  (module-scoped fixture)
    IDENTIFIERS_CONTAINED,
    IDENTIFIERS_EXACT,
    RESEARCH_TABLES,
    K,
    built_warehouse,
)


@pytest.fixture(scope="module")
def published(built_warehouse, tmp_path_factory):  # noqa: F811
    cfg = dataclasses.replace(settings(), release_dir=tmp_path_factory.mktemp("releases"), suppression_k=K)
    return cfg, release.publish(built_warehouse.url, cfg, today=dt.date(2025, 6, 1))


def test_release_has_every_table_and_file(published):
    _, rel = published
    assert rel.created and re.fullmatch(r"2025-06-01-[0-9a-f]{12}", rel.version)
    names = {p.name for p in rel.path.iterdir()}
    for table in RESEARCH_TABLES:
        assert {f"{table}.parquet", f"{table}.csv"} <= names
    assert {
        "data_dictionary.csv",
        "data_dictionary.json",
        "codebook.csv",
        "README.md",
        "MANIFEST.sha256",
    } <= names


def test_tables_open_in_pandas_with_their_dictionary(published):
    _, rel = published
    dictionary = pd.read_csv(rel.path / "data_dictionary.csv")
    assert dictionary["description"].notna().all() and (dictionary["description"].str.len() > 0).all()
    for table in RESEARCH_TABLES:
        frame = pd.read_parquet(rel.path / f"{table}.parquet")
        from_csv = pd.read_csv(rel.path / f"{table}.csv")
        described = dictionary[dictionary["table"] == table]
        assert list(frame.columns) == list(described["column"]) == list(from_csv.columns)
        assert len(frame) == len(from_csv) == rel.tables[table] > 0


def test_manifest_checks_every_file(published):
    _, rel = published
    listed = {}
    for line in (rel.path / "MANIFEST.sha256").read_text().splitlines():
        digest, name = line.split("  ", 1)
        listed[name] = digest
    assert set(listed) == {p.name for p in rel.path.iterdir()} - {"MANIFEST.sha256"}
    for name, digest in listed.items():
        assert hashlib.sha256((rel.path / name).read_bytes()).hexdigest() == digest


def test_publishing_unchanged_data_again_writes_nothing(published, built_warehouse):  # noqa: F811
    cfg, rel = published
    again = release.publish(built_warehouse.url, cfg, today=dt.date(2025, 7, 1))
    assert not again.created and again.path == rel.path
    assert [p.name for p in cfg.release_dir.iterdir()] == [rel.version]


def test_readme_recipe_reproduces_cp_noncompliance_rate(published, monkeypatch):
    _, rel = published
    readme = (rel.path / "README.md").read_text()
    block = readme.split("## Reproducing cp_noncompliance_rate from the panel", 1)[1]
    code = re.search(r"```python\n(.*?)```", block, re.S).group(1)
    monkeypatch.chdir(rel.path)
    scope: dict = {}
    exec(code, scope)  # the README's own snippet, run on the released files
    rates = scope["rates"].set_index(["panel", "cycle", "compliance_point"])
    every_rate = pd.read_parquet(rel.path / "cp_noncompliance_rate.parquet")
    # cycles reached by fewer than k factories are not in the factory-level tables: the cells the
    # recipe cannot rebuild (those cycles, balanced panels reaching into them) are all suppressed,
    # so it misses no published value
    keys = list(zip(every_rate["panel"], every_rate["cycle"], every_rate["compliance_point"], strict=True))
    assert set(rates.index) <= set(keys)
    rebuilt = [k in rates.index for k in keys]
    assert every_rate[[not r for r in rebuilt]]["is_suppressed"].all()
    published_rates = every_rate[rebuilt]
    for row in published_rates.itertuples():
        mine = rates.loc[(row.panel, row.cycle, row.compliance_point)]
        assert mine["factories_assessed"] == row.factories_assessed
        if not row.is_suppressed:
            assert mine["factories_noncompliant"] == row.factories_noncompliant
            assert mine["noncompliance_rate"] == pytest.approx(row.noncompliance_rate)
    assert published_rates["is_suppressed"].any() and (~published_rates["is_suppressed"]).any()
    assert f"k = {K}" in readme


def test_codebook_explains_coded_values(published):
    _, rel = published
    with open(rel.path / "codebook.csv", encoding="utf-8") as f:
        codes = list(csv.DictReader(f))
    by = {(c["column"], c["value"]): c["meaning"] for c in codes}
    assert by[("gender", "female")] and by[("panel", "all")] and by[("suppression_reason", "primary")]
    assert ("panel", "balanced_2") in by and ("course_code", "SST") in by
    assert all(
        c["meaning"] for c in codes if c["column"] in {"gender", "panel", "suppression_reason", "role"}
    )


def test_course_codes_carry_the_catalogues_titles(published, built_warehouse):  # noqa: F811
    """A course code means what the case-management catalogue calls it, not a title kept in code:
    a course renamed or added at source is explained in the next release."""
    _, rel = published
    with db.connect(built_warehouse.url) as conn:
        catalogue = dict(conn.execute("select course_code, title from staging.stg_courses").fetchall())
    with open(rel.path / "codebook.csv", encoding="utf-8") as f:
        courses = {c["value"]: c["meaning"] for c in csv.DictReader(f) if c["column"] == "course_code"}
    assert courses, "the release lists no course code"
    assert courses == {code: catalogue[code] for code in courses}


def test_no_source_identifier_in_any_release_file(published):
    _, rel = published
    problems = []
    for path in rel.path.iterdir():
        if path.suffix == ".parquet":
            for column, values in pq.read_table(path).to_pydict().items():
                for v in values:
                    text = "" if v is None else str(v)
                    if text in IDENTIFIERS_EXACT or any(s in text for s in IDENTIFIERS_CONTAINED):
                        problems.append((path.name, column, text))
            continue
        text = path.read_text(encoding="utf-8")
        problems += [(path.name, s) for s in IDENTIFIERS_CONTAINED if s in text]
        if path.suffix == ".csv":
            with open(path, encoding="utf-8") as f:
                problems += [
                    (path.name, cell) for row in csv.reader(f) for cell in row if cell in IDENTIFIERS_EXACT
                ]
    assert problems == []


def test_release_csv_cells_cannot_run_as_formulas(warehouse_db, tmp_path):
    """Text that a spreadsheet would run (=, +, -, @, tab, CR) is escaped; numbers stay numbers."""
    from include import db

    with db.connect(warehouse_db, role="transformer") as conn:
        conn.execute("create table research.formulas (label text, amount integer, share double precision)")
        conn.execute(
            "insert into research.formulas values"
            " ('=HYPERLINK(\"http://example.invalid\",\"x\")', -3, -0.5), ('+92', 1, 0.25),"
            " ('-2+3', 2, 0), ('@SUM(A1)', 3, 1), (E'\\tx', 4, 1), (E'\\rx', 5, 1), ('plain', 6, 1)"
        )
        conn.execute("grant select on research.formulas to researcher")
        conn.execute("comment on table research.formulas is 'test'")
    cfg = dataclasses.replace(settings(), release_dir=tmp_path / "releases")
    rel = release.publish(warehouse_db, cfg, today=dt.date(2025, 6, 1))
    with open(rel.path / "formulas.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    labels = [r["label"] for r in rows]
    assert all(not label.startswith(("=", "+", "-", "@", "\t", "\r")) for label in labels), labels
    assert '\'=HYPERLINK("http://example.invalid","x")' in labels and "plain" in labels
    assert {r["amount"] for r in rows} >= {"-3"} and "-0.5" in {r["share"] for r in rows}
    # Parquet keeps every value as it is
    frame = pq.read_table(rel.path / "formulas.parquet").to_pylist()
    assert any(r["label"].startswith("=HYPERLINK") for r in frame)
