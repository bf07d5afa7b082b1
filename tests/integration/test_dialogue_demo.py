"""Social dialogue and remediation marts on the scale-1 demo, built by ``bw run`` (what ``make run``
calls) in throwaway databases and folders: real Airflow, GX, dbt and PostgreSQL.

What the marts must show on the demo (issue 17): a ``factory_social_dialogue`` row for every engaged
year of every engaged factory; PICC meetings, improvement items raised and completed and women
supervisors trained in every year of ``programme_kpis``; a recheck rate for every factory and cycle
that has a next cycle; and the patterns the demo generator builds in (women's representation in
PICCs closing the gap; points whose item was completed found compliant more often).
"""

from __future__ import annotations

import datetime as dt

import pytest

from include import db
from tests.conftest import assert_demo_run_succeeded


@pytest.fixture(scope="module")
def demo_warehouse(demo_run):
    """The session's scale-1 demo run (tests/conftest.py): its warehouse URL and work folder."""
    assert_demo_run_succeeded(demo_run)
    return demo_run["url"], demo_run["work"]


def _all(url: str, query: str) -> list[tuple]:
    with db.connect(url) as conn:
        return conn.execute(query).fetchall()


def test_every_engaged_factory_has_a_row_for_each_engaged_year(demo_warehouse):
    url, _ = demo_warehouse
    this_year = dt.date.today().year
    factories = _all(
        url,
        "select factory_id, enrolled_on, exited_on from marts.dim_factory"
        " where in_registry and not is_deleted and not is_obsolete",
    )
    expected = {
        (fid, year)
        for fid, enrolled, exited in factories
        for year in range(enrolled.year, min(this_year, exited.year if exited else this_year) + 1)
    }
    actual = set(_all(url, "select factory_id, year from marts.factory_social_dialogue"))
    assert len(factories) == 121
    assert actual == expected
    # meetings happen: most factories have a PICC, and most of their engaged years a meeting
    with_meetings = _all(
        url, "select count(distinct factory_id) from marts.factory_social_dialogue where picc_meetings > 0"
    )[0][0]
    assert with_meetings > 0.7 * 121
    regular = _all(url, "select count(*) filter (where has_regular_picc) from marts.factory_social_dialogue")
    assert regular[0][0] > 0


def test_programme_kpis_show_dialogue_remediation_and_gender_every_year(demo_warehouse):
    url, _ = demo_warehouse
    rows = _all(
        url,
        "select period, picc_meetings, factories_with_picc_meeting, improvement_items_raised,"
        " improvement_items_completed, women_supervisors_trained from marts.programme_kpis order by period",
    )
    years = [r for r in rows if r[0] != "all"]
    assert [r[0] for r in years] == ["2022", "2023", "2024", "2025"]
    for period, meetings, factories, raised, completed, supervisors in rows:
        assert meetings > 0 and factories > 0, period
        assert raised > 0 and completed > 0, period
        assert supervisors > 0, period
    total = dict((r[0], r[1:]) for r in rows)["all"]
    assert total[0] == sum(r[1] for r in years)  # meetings and items add up over the years
    assert total[2] == sum(r[3] for r in years)
    assert total[3] == sum(r[4] for r in years)


def test_recheck_rate_exists_for_every_factory_cycle_with_a_next_cycle(demo_warehouse):
    url, _ = demo_warehouse
    rows = _all(
        url,
        """
        select r.factory_id, r.cycle, r.items_rechecked, r.recheck_compliance_rate
        from marts.factory_remediation as r
        where exists (
            select 1 from marts.fct_assessment as a
            where a.is_counted and a.factory_id = r.factory_id and a.cycle = r.cycle + 1
        )
        """,
    )
    assert len(rows) == 52 + 22  # second and third assessments of the scale-1 programme
    assert all(rechecked > 0 and rate is not None for _, _, rechecked, rate in rows), rows
    without_next = _all(
        url,
        """
        select count(*) from marts.factory_remediation as r
        where r.recheck_compliance_rate is not null and not exists (
            select 1 from marts.fct_assessment as a
            where a.is_counted and a.factory_id = r.factory_id and a.cycle = r.cycle + 1
        )
        """,
    )[0][0]
    assert without_next == 0


def test_completed_items_are_found_compliant_more_often_at_the_next_cycle(demo_warehouse):
    url, _ = demo_warehouse
    rates = dict(
        _all(
            url,
            """
            select
                i.closed_on is not null and i.is_completed and i.closed_on <= a.start_date as done,
                avg((not p.is_noncompliant)::int)::float8
            from marts.fct_improvement_item as i
            join marts.fct_assessment as a
                on a.is_counted and a.factory_id = i.factory_id and a.cycle = i.cycle + 1
            join (
                select assessment_id, compliance_point, bool_or(is_noncompliant) as is_noncompliant
                from marts.fct_finding where is_counted group by 1, 2
            ) as p on p.assessment_id = a.assessment_id and p.compliance_point = i.compliance_point
            group by 1
            """,
        )
    )
    assert rates[True] > rates[False] + 0.15, rates


def test_items_are_mostly_completed_some_late_some_overdue(demo_warehouse):
    url, _ = demo_warehouse
    raised, completed, late, overdue = _all(
        url,
        "select count(*), count(*) filter (where is_completed),"
        " count(*) filter (where is_completed and not closed_on_time), count(*) filter (where is_overdue)"
        " from marts.fct_improvement_item",
    )[0]
    assert completed > 0.6 * raised
    assert 0 < late < completed / 2
    assert 0 < overdue < raised - completed + 1


def test_womens_share_of_picc_attendees_closes_the_gap_to_the_workforce(demo_warehouse):
    url, _ = demo_warehouse
    gaps = dict(
        _all(
            url,
            "select year, avg(women_representation_gap)::float8 from marts.factory_social_dialogue"
            " where women_representation_gap is not null group by year order by year",
        )
    )
    assert gaps[2022] < 0, gaps  # women under-represented in the first PICC meetings
    assert gaps[2022] < gaps[2023] < gaps[2024], gaps
    assert abs(gaps[2025]) < abs(gaps[2022]), gaps


def test_research_release_carries_the_new_tables_with_dictionary_and_readme(demo_warehouse):
    import csv

    _, work = demo_warehouse
    releases = sorted(p for p in (work / "releases").iterdir() if p.is_dir() and not p.name.startswith("."))
    assert releases, "no research release written"
    folder = releases[-1]
    new_tables = ("factory_social_dialogue", "factory_remediation", "programme_dialogue_kpis")
    for table in new_tables:
        assert (folder / f"{table}.parquet").is_file() and (folder / f"{table}.csv").is_file(), table
    with (folder / "data_dictionary.csv").open(newline="") as fh:
        dictionary = [r for r in csv.DictReader(fh) if r["table"] in new_tables]
    described = {(r["table"], r["column"]) for r in dictionary if r["description"].strip()}
    assert ("factory_social_dialogue", "has_regular_picc") in described
    assert ("factory_remediation", "recheck_compliance_rate") in described
    assert ("programme_dialogue_kpis", "women_supervisors_trained") in described
    assert len(described) == len(dictionary)
    readme = (folder / "README.md").read_text()
    assert "## Social dialogue, remediation and gender" in readme
    assert all(f"`{table}`" in readme for table in new_tables)
