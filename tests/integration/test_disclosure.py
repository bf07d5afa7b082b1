"""Disclosure control, checked from the declared quasi-identifiers (``meta.disclosure`` of the
research models): every table of ``research`` and every CSV / Parquet file of a release, on the
distinctive warehouse of test_research.py, which holds planted unique people (the only union
representative, the only manager of gender ``other``). A second release after new data must not
single them out either, alone or together with the first."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from include import db
from include.config import settings
from include.serve import release
from tests.integration import disclosure
from tests.integration.test_research import PLANTED, K, built_warehouse, rows  # noqa: F401


def research_tables(url: str) -> list[str]:
    return [
        r["table_name"]
        for r in rows(
            url,
            "select table_name from information_schema.tables where table_schema = 'research'",
            role=None,
        )
    ]


def check_warehouse(built) -> list[str]:
    declared = disclosure.declared(Path(built.target) / "manifest.json")
    found = []
    for table in research_tables(built.url):
        data = rows(built.url, f"select * from research.{table}")
        columns = [
            r["column_name"]
            for r in rows(
                built.url,
                "select column_name from information_schema.columns where table_schema = 'research'"
                f" and table_name = '{table}' order by ordinal_position",
                role=None,
            )
        ]
        found += disclosure.problems(table, columns, data, declared.get(table), K)
    return found


def check_release(built, folder: Path) -> list[str]:
    declared = disclosure.declared(Path(built.target) / "manifest.json")
    found = []
    for name, (table, columns, data) in disclosure.release_tables(folder).items():
        found += [f"{name}: {p}" for p in disclosure.problems(table, columns, data, declared.get(table), K)]
    return found


def publish(built, tmp_path: Path, today: str):
    import datetime as dt

    cfg = dataclasses.replace(settings(), release_dir=tmp_path / "releases", suppression_k=K)
    return release.publish(built.url, cfg, today=dt.date.fromisoformat(today))


def planted_cells(url: str) -> list[dict]:
    """The research training cells that hold a planted person (year of session 80003: 2022)."""
    out = []
    for _pid, _s, _ref, _n, _c, _p, gender, role, _f in PLANTED:
        out += rows(
            url,
            "select * from research.training_participation where session_year = 2022"
            f" and course_code = 'SST' and gender = '{'other' if gender == 'other' else gender}'"
            f" and role = '{role}'",
        )
    return out


def test_every_research_table_is_declared_and_k_anonymous(built_warehouse):  # noqa: F811
    assert research_tables(built_warehouse.url)
    assert check_warehouse(built_warehouse) == []


def test_the_check_sees_an_undeclared_column_and_a_small_class():
    policy = {
        "kind": "microdata",
        "unit": "factory",
        "keys": ["k"],
        "quasi_identifiers": ["a"],
        "measures": [],
    }
    data = [{"k": str(i), "a": "x" if i < 5 else "y", "b": 1} for i in range(6)]
    found = disclosure.problems("t", ["k", "a", "b"], data, policy, 5)
    assert any("t.b" in p for p in found) and any("1 factory(s) share {'a': 'y'}" in p for p in found)
    assert disclosure.problems("t", ["k"], [], None, 5) == ["t: no meta.disclosure declared"]


def test_planted_people_are_never_singled_out(built_warehouse):  # noqa: F811
    cells = planted_cells(built_warehouse.url)
    assert len(cells) == 2 and all(c["is_suppressed"] for c in cells), cells
    # no person rows at all: no research table has a person key or a role next to a factory key
    columns = rows(
        built_warehouse.url,
        "select table_name, column_name from information_schema.columns where table_schema = 'research'",
        role=None,
    )
    by_table: dict[str, set[str]] = {}
    for c in columns:
        by_table.setdefault(c["table_name"], set()).add(c["column_name"])
    assert not any({"person_key", "participation_key"} & cols for cols in by_table.values())
    assert not any({"role", "factory_key"} <= cols for cols in by_table.values())
    # the year's suppressed cells hold at least k people (programme_kpis publishes the year's totals)
    marts = rows(
        built_warehouse.url,
        "select extract(year from starts_on)::int as y, course_code, gender, role, person_key"
        " from marts.fct_training_participation",
        role=None,
    )
    research = rows(built_warehouse.url, "select * from research.training_participation")
    for year in {r["session_year"] for r in research if r["is_suppressed"]}:
        hidden = {
            (r["course_code"], r["gender"], r["role"])
            for r in research
            if r["session_year"] == year and r["is_suppressed"]
        }
        people = {
            m["person_key"]
            for m in marts
            if m["y"] == year and (m["course_code"], m["gender"], m["role"]) in hidden
        }
        assert len(people) >= K, (year, hidden)


def test_releases_comply_alone_and_in_pairs(built_warehouse, tmp_path):  # noqa: F811
    first = publish(built_warehouse, tmp_path, "2026-01-01")
    assert check_release(built_warehouse, first.path) == []
    policy = (first.path / "release.json").read_text()
    assert '"k": 5' in policy and "quasi_identifiers" in policy

    # new data: a fresh session in 2022 with five more workers, one more union rep
    with db.connect(built_warehouse.url) as conn:
        conn.execute(
            "insert into raw.cm_training_sessions (session_id, course_code, factory_id, city, starts_on,"
            " ends_on, trainer_code, updated_at, _batch_id, _source, _source_row) values"
            " (80009, 'SST', 90005, 'Faisalabad', '2022-09-10', '2022-09-11', 'T1', now(), 9, 's', 9)"
        )
        for i in range(6):
            conn.execute(
                "insert into raw.cm_training_participants (participant_id, session_id, person_ref,"
                " full_name, cnic, phone, gender, role, factory_id, attended, pre_score, post_score,"
                " updated_at, _batch_id, _source, _source_row) values"
                " (%s, 80009, %s, 'ZZSECRETPERSON New', '35202-9900000-1', '+92 300 9900000', 'male',"
                " %s, %s, true, 50, 60, now(), 9, 'p', %s)",
                (70200 + i, f"PREFZZNEW{i}", "union_rep" if i == 0 else "worker", 90005 + i, i + 1),
            )
    built_warehouse.dbt("build")
    second = publish(built_warehouse, tmp_path, "2026-02-01")
    assert second.created and second.path != first.path
    assert check_release(built_warehouse, second.path) == []
    assert check_warehouse(built_warehouse) == []

    # in both releases the planted people's cells are suppressed, so no difference between the two
    # releases isolates them
    for folder in (first.path, second.path):
        data = disclosure.release_tables(folder)["training_participation.csv"][2]
        for _pid, _s, _ref, _n, _c, _p, gender, role, _f in PLANTED:
            cell = [
                r
                for r in data
                if r["session_year"] == "2022"
                and r["course_code"] == "SST"
                and r["gender"] == gender
                and r["role"] == role
            ]
            assert cell and all(r["is_suppressed"] == "true" for r in cell), (folder.name, role, cell)

    # the planted people were in the first release's suppressed cells and still are: the register
    # kept their cells ('stable' or suppressed anew), so the two releases cannot be subtracted
    cells = planted_cells(built_warehouse.url)
    assert cells and all(c["is_suppressed"] for c in cells)


def test_a_cell_suppressed_once_stays_suppressed_while_its_population_is_unchanged(built_warehouse):  # noqa: F811
    url = built_warehouse.url
    registered = rows(url, "select * from private.suppression_register", role=None)
    assert registered and {r["table_name"] for r in registered} <= {
        "training_participation",
        "programme_kpis",
        "programme_dialogue_kpis",
    }
    # a published cell, as if an earlier build had suppressed it with the same participations
    cell = rows(
        url,
        "select cell, population, session_year, course_code, gender, role"
        " from intermediate.research_training_cells where suppression is null"
        " order by participants desc limit 1",
        role=None,
    )[0]
    with db.connect(url) as conn:
        conn.execute(
            "insert into private.suppression_register (table_name, cell, population, reason)"
            " values ('training_participation', %s, %s, 'complementary')",
            (cell["cell"], cell["population"]),
        )
    built_warehouse.dbt("run", "--select", "path:models/research")
    dims = ("session_year", "course_code", "gender", "role")
    now = [
        r
        for r in rows(url, "select * from research.training_participation")
        if all(r[d] == cell[d] for d in dims)
    ]
    assert len(now) == 1 and now[0]["is_suppressed"] and now[0]["suppression_reason"] == "stable"
    assert check_warehouse(built_warehouse) == []  # its year's other cells still protect it
    # a changed population frees it: the register then only holds other populations of the cell
    with db.connect(url) as conn:
        conn.execute(
            "update private.suppression_register set population = 'an earlier population'"
            " where cell = %s and population = %s",
            (cell["cell"], cell["population"]),
        )
    built_warehouse.dbt("run", "--select", "path:models/research")
    again = rows(
        url, f"select * from intermediate.research_training_cells where cell = '{cell['cell']}'", role=None
    )
    assert again[0]["suppression"] != "stable"


def test_a_programme_figure_suppressed_once_stays_suppressed_and_protected(built_warehouse):  # noqa: F811
    """The register holds for the period figures too: a year's figure suppressed by an earlier build
    (e.g. as the complementary cell of another year) stays suppressed while its factories are the
    same, and is then treated as withheld, so `all` minus the published years cannot give it back.
    (research.programme_dialogue_kpis decides its cells with the same macro; this warehouse has too
    few PICC factories for a published year.)"""
    url = built_warehouse.url
    table, cells = "programme_kpis", "research_programme_kpi_cells"
    published = rows(
        url,
        f"select measure, period, cell, population, factories from intermediate.{cells}"
        " where suppression is null and period <> 'all' and factories >= 1"
        " order by factories desc, measure, period limit 1",
        role=None,
    )
    assert published, f"no published year figure in {cells}"
    cell = published[0]
    with db.connect(url) as conn:
        conn.execute(
            "insert into private.suppression_register (table_name, cell, population, reason)"
            " values (%s, %s, %s, 'complementary') on conflict do nothing",
            (table, cell["cell"], cell["population"]),
        )
    built_warehouse.dbt("run", "--select", "path:models/research")
    decided = {
        (r["measure"], r["period"]): r for r in rows(url, f"select * from intermediate.{cells}", role=None)
    }
    assert decided[(cell["measure"], cell["period"])]["suppression"] == "stable"
    # the measure's suppressed years together cover at least k factories, or `all` is suppressed
    hidden_years = [
        r for (m, p), r in decided.items() if m == cell["measure"] and p != "all" and r["suppression"]
    ]
    total = decided[(cell["measure"], "all")]
    if total["suppression"] is None and len(hidden_years) == 1:
        assert hidden_years[0]["factories"] >= K
    row = rows(url, f"select * from research.{table} where period = '{cell['period']}'", role=None)
    assert row and row[0]["is_suppressed"] and f"{cell['measure']}:stable" in row[0]["suppressed_cells"]
    assert check_warehouse(built_warehouse) == []
    with db.connect(url) as conn:  # leave the shared warehouse as it was
        conn.execute(
            "delete from private.suppression_register"
            " where table_name = %s and cell = %s and population = %s",
            (table, cell["cell"], cell["population"]),
        )
    built_warehouse.dbt("run", "--select", "path:models/research")


@pytest.mark.parametrize(
    "text, expected",
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1", "'+1"),
        ("-cmd", "'-cmd"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("SST", "SST"),
        ("", ""),
    ],
)
def test_csv_text_cells_cannot_be_formulas(text, expected):
    assert release._csv_value(text) == expected


def test_csv_numbers_stay_numbers():
    assert release._csv_value(-3) == "-3" and release._csv_value(-0.5) == "-0.5"
    assert release._csv_value(True) == "true" and release._csv_value(None) == ""
