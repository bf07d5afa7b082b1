"""Every critical expectation stops a batch that breaks it; a good batch passes them all.

The bad batches are built from the suites themselves (a null for not-null, a stranger for an
allowed-values rule, a duplicate for uniqueness, …), so a new critical rule gets a test for free;
a rule of a kind the builder does not know (custom SQL) needs an entry in ``CUSTOM``.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from psycopg import sql

from include import db
from include.extract.case_management import spec
from include.extract.columns import CONTRACT_COLUMNS
from include.validate import suites as validate

TODAY = dt.date.today()
FUTURE = TODAY + dt.timedelta(days=30)

GOOD = {
    "assessment_export_rows": dict(
        zip(
            CONTRACT_COLUMNS,
            [
                "Pakistan",
                "12",
                "Factory 12",
                "Q-9",
                "01/02/2024",
                "2",
                "NCQ",
                "17",
                "A question",
                "Overtime",
                "Working Time",
                "1",
                "",
                "Garment CAT V2",
            ],
            strict=True,
        )
    ),
    "cm_factories": {
        "factory_id": 1,
        "name": "F",
        "os_id": "PK2023145ABCDE7",
        "address": "a",
        "city": "Lahore",
        "province": "Punjab",
        "sector": "textile",
        "enrolled_on": "2020-01-01",
        "exited_on": None,
        "exit_reason": None,
        "workers_total": 10,
        "workers_female": 10,
        "updated_at": "2025-01-01T00:00:00Z",
        "deleted_at": None,
    },
    "cm_brands": {"brand_id": 1, "name": "B", "updated_at": "2025-01-01T00:00:00Z"},
    "cm_factory_brands": {
        "factory_id": 1,
        "brand_id": 1,
        "since": "2021-01-01",
        "until": None,
        "updated_at": "2025-01-01T00:00:00Z",
    },
    "cm_advisory_visits": {
        "visit_id": 1,
        "factory_id": 1,
        "visit_date": "2024-05-01",
        "phase": "initial",
        "mode": "onsite",
        "advisor_code": "A1",
        "topics": "Working Time;Compensation",
        "updated_at": "2025-01-01T00:00:00Z",
        "deleted_at": None,
    },
    "cm_courses": {"course_code": "SST", "title": "Supervisory skills", "days": 2},
    "cm_training_sessions": {
        "session_id": 1,
        "course_code": "GEAR",
        "factory_id": None,
        "city": "Karachi",
        "starts_on": "2024-05-01",
        "ends_on": "2024-05-01",
        "trainer_code": "T1",
        "updated_at": "2025-01-01T00:00:00Z",
        "deleted_at": None,
    },
    "cm_training_participants": {
        "participant_id": 1,
        "session_id": 1,
        "person_ref": "P1",
        "full_name": "X",
        "cnic": "12345-1234567-1",
        "phone": "0300",
        "gender": "F",
        "role": "line_supervisor",
        "factory_id": 1,
        "attended": True,
        "pre_score": 0,
        "post_score": 100,
        "updated_at": "2025-01-01T00:00:00Z",
        "deleted_at": None,
    },
    "cm_picc_meetings": {
        "meeting_id": 1,
        "factory_id": 1,
        "held_on": "2024-05-01",
        "workers_present": 3,
        "managers_present": 2,
        "women_present": 2,
        "updated_at": "2025-01-01T00:00:00Z",
    },
    "cm_improvement_items": {
        "item_id": 1,
        "factory_id": 1,
        "cycle": 1,
        "compliance_point": "Overtime",
        "status": "in_progress",
        "raised_on": "2024-05-01",
        "due_on": str(FUTURE),
        "closed_on": None,
        "updated_at": "2025-01-01T00:00:00Z",
    },
}

CUSTOM = {  # rules with a row condition or custom SQL: the rows that break them (changes to GOOD)
    "NCQ finding is 0, 1 or empty": [{"Finding": "2"}],
    "Cluster required on NCQ rows": [{"Cluster": None}],
    "Quest.ID x Question.ID unique in a file": [{}, {"Q.Label": "the same question twice"}],
    "Assesment.Start.Date not in the future": [{"Assesment.Start.Date": FUTURE.strftime("%d/%m/%Y")}],
    "exited_on not before enrolled_on": [{"exited_on": "2019-12-31"}],
    "ends_on not before starts_on": [{"ends_on": "2024-04-30"}],
}


def _suites() -> dict[str, dict]:
    return {entity: validate.load_suite_json(entity) for entity in GOOD}


def _bad_batch(entity: str, exp: dict) -> tuple[list[dict], str | None]:
    """Rows that break this expectation (and a column to drop, for the required-columns rule)."""
    good, kw, kind = GOOD[entity], exp["kwargs"], exp["type"]
    rule = exp["meta"]["rule"]
    if rule in CUSTOM:
        return [{**good, **change} for change in CUSTOM[rule]], None
    if rule.endswith("not in the future"):
        column = rule.split()[0]
        return [{**good, column: str(FUTURE)}], None
    if kind == "expect_table_columns_to_match_set":
        return [good], kw["column_set"][1]
    if kind == "expect_column_values_to_not_be_null":
        return [{**good, kw["column"]: None}], None
    if kind in ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"):
        return [good, good], None
    if kind in ("expect_column_values_to_be_in_set", "expect_column_values_to_match_regex"):
        return [{**good, kw["column"]: "NOT-ALLOWED"}], None
    if kind == "expect_column_values_to_be_between":
        value = kw["max_value"] + 1 if "max_value" in kw else kw["min_value"] - 1
        return [{**good, kw["column"]: value}], None
    if kind == "expect_column_pair_values_a_to_be_greater_than_b":
        return [{**good, kw["column_B"]: good[kw["column_A"]] + 1}], None
    raise AssertionError(
        f"{entity}: no bad batch known for critical rule {rule!r} ({kind}); add it to CUSTOM"
    )


def _stage(
    url: str, entity: str, name: str, rows: list[dict], drop: str | None = None, batch_id: int = 1
) -> None:
    table = sql.Identifier("stage", name)
    with db.connect(url) as conn:
        if entity == "assessment_export_rows":
            cols = sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in CONTRACT_COLUMNS)
            conn.execute(
                sql.SQL("create table {} ({}, _batch_id bigint default {}, _source_row bigint)").format(
                    table, cols, sql.Literal(batch_id)
                )
            )
        else:
            columns = sql.SQL(", ").join(map(sql.Identifier, spec(entity.removeprefix("cm_")).columns))
            conn.execute(
                sql.SQL("create table {} as select {}, 0::bigint as _source_row from {} with no data").format(
                    table, columns, sql.SQL(f"raw.{entity}")
                )
            )
        for i, row in enumerate(rows, start=2):
            names = [*row, "_source_row"]
            conn.execute(
                sql.SQL("insert into {} ({}) values ({})").format(
                    table,
                    sql.SQL(", ").join(map(sql.Identifier, names)),
                    sql.SQL(", ").join(sql.Placeholder() * len(names)),
                ),
                [*row.values(), i],
            )
        if drop:
            conn.execute(sql.SQL("alter table {} drop column {}").format(table, sql.Identifier(drop)))


@pytest.fixture(scope="module")
def wh(pg_server_url, tmp_path_factory):
    """One warehouse for the module (validation reads only its own stage tables)."""
    import os
    import uuid

    from include import warehouse

    url = db.with_database(pg_server_url, f"bwtest_validate_{uuid.uuid4().hex[:10]}")
    db.ensure_database(url)
    old = {k: os.environ.get(k) for k in ("PSEUDONYM_KEY", "DOCS_DIR")}
    os.environ["PSEUDONYM_KEY"] = "test-key-not-secret-0123456789abcdef"
    os.environ["DOCS_DIR"] = str(tmp_path_factory.mktemp("docs"))
    try:
        warehouse.bootstrap(url)
        yield url
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        db.drop_database(url)


def test_every_expectation_has_a_severity_and_a_rule_name():
    for entity, suite in _suites().items():
        rules = [e["meta"]["rule"] for e in suite["expectations"]]
        assert len(rules) == len(set(rules)), entity
        assert {e["meta"]["severity"] for e in suite["expectations"]} <= {"critical", "warning"}


@pytest.mark.parametrize("entity", sorted(GOOD))
def test_a_good_batch_passes_and_each_critical_rule_stops_its_bad_batch(wh, entity):
    suite = _suites()[entity]
    _stage(wh, entity, f"good_{entity}", [GOOD[entity]])
    good = validate.validate_batch(wh, entity, "stage", f"good_{entity}", 1)
    assert good.failed_critical == [], good.checks
    assert not [c for c in good.checks if c.details], "an expectation could not run"

    for i, exp in enumerate(e for e in suite["expectations"] if e["meta"]["severity"] == "critical"):
        rows, drop = _bad_batch(entity, exp)
        name = f"bad_{entity}_{i}"
        _stage(wh, entity, name, rows, drop)
        outcome = validate.validate_batch(wh, entity, "stage", name, 1000 + i)
        assert exp["meta"]["rule"] in outcome.failed_critical, (exp["meta"]["rule"], outcome.failed_critical)

    recorded = (
        db.connect(wh)
        .execute("select count(*) from audit.validation_results where suite = %s and batch_id = 1", (entity,))
        .fetchone()[0]
    )
    assert recorded == len(suite["expectations"])


def test_suites_are_valid_gx_suites():
    import logging

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx

    for entity in GOOD:
        suite = gx.ExpectationSuite(**json.loads(validate.suite_path(entity).read_text()))
        assert len(suite.expectations) == len(validate.load_suite_json(entity)["expectations"])


def test_batches_validated_together_get_the_results_each_would_get_alone(wh):
    """A run's export files are validated on the union of their stage tables, then per batch where
    something was found: every batch's results must be those of validating it on its own."""
    entity, good = "assessment_export_rows", GOOD["assessment_export_rows"]
    second_question = {**good, "Question.ID": "18"}
    batches = {
        501: [good, second_question],  # clean
        502: [
            {**good, "Country": "Bangladesh"},
            {**second_question, "CP": "Wages Overtime (old)"},
        ],  # warnings
        503: [good, {**good, "Q.Label": "again"}, {**second_question, "Question.type": "XYZ"}],  # critical
        504: [{**good, "Quest.ID": "Q-10"}, {**second_question, "Country": "India"}],  # a warning
        # more unknown factories than GX returns rows of a query (200): told apart by a second run
        505: [{**good, "Factory.Assessed.ID": str(1000 + i), "Quest.ID": f"Q-{i}"} for i in range(210)],
    }
    for batch_id, rows in batches.items():
        _stage(wh, entity, f"together_{batch_id}", rows, batch_id=batch_id)
        _stage(wh, entity, f"alone_{batch_id}", rows, batch_id=batch_id)
    together = validate.validate_batches(wh, entity, "stage", {b: f"together_{b}" for b in batches})
    alone = {b: validate.validate_batch(wh, entity, "stage", f"alone_{b}", b) for b in batches}

    def seen(outcome):  # examples of a query with over 200 unexpected rows are any 200 of them
        return [
            (
                c.expectation,
                c.success,
                c.unexpected_count,
                c.unexpected_values if (c.unexpected_count or 0) <= 200 else None,
            )
            for c in outcome.checks
        ]

    for batch_id in batches:
        assert seen(together[batch_id]) == seen(alone[batch_id]), batch_id
    assert together[501].failed_critical == [] and together[501].failed_warnings == [
        "factory known to the registry"
    ]
    assert set(together[502].failed_warnings) == {
        "CP is a canonical name",
        "Country allowed values",
        "factory known to the registry",
    }
    assert together[503].failed_critical == [
        "Question.type allowed values",
        "Quest.ID x Question.ID unique in a file",
    ]
    assert "Country allowed values" in together[504].failed_warnings
    unknown = [c for c in together[505].checks if c.expectation == "factory known to the registry"]
    assert [(c.unexpected_count, len(c.unexpected_values)) for c in unknown] == [(210, 5)]
    assert [
        c.unexpected_values for c in together[504].checks if c.expectation == "Country allowed values"
    ] == [["India"]]
    with db.connect(wh) as conn:  # the union view is gone; every batch has a full set of results
        assert conn.execute("select count(*) from pg_views where viewname like 'run_%'").fetchone() == (0,)
        counts = conn.execute(
            "select batch_id, count(*) from audit.validation_results where batch_id between 501 and 505 "
            "group by 1 order by 1"
        ).fetchall()
    n = len(validate.load_suite_json(entity)["expectations"])
    assert counts == [(b, 2 * n) for b in batches]  # together and alone


def test_expectations_about_a_whole_batch_are_run_per_batch_when_validated_together(
    wh, tmp_path, monkeypatch
):
    """A row count or a custom rule about the file as a whole does not decompose over a union:
    it runs per batch (a row condition for GX's own, the batch's own table for custom SQL)."""
    suite = {
        "name": "whole_batch_rules",
        "expectations": [
            {
                "type": "expect_table_row_count_to_be_between",
                "kwargs": {"min_value": 2},
                "meta": {"severity": "critical", "rule": "at least two rows"},
            },
            {
                "type": "unexpected_rows_expectation",
                "kwargs": {
                    "unexpected_rows_query": 'select count(distinct "Quest.ID") as quests from {batch} '
                    'having count(distinct "Quest.ID") < 2'
                },
                "meta": {"severity": "warning", "rule": "at least two assessments"},
            },
        ],
    }
    (tmp_path / "whole_batch_rules.json").write_text(json.dumps(suite))
    monkeypatch.setattr(validate, "EXPECTATIONS_DIR", tmp_path)
    good = GOOD["assessment_export_rows"]
    batches = {
        601: [good, {**good, "Quest.ID": "Q-2"}],  # two rows, two assessments: passes both
        602: [good],  # one row, one assessment: fails both
        603: [good, {**good, "Question.ID": "99"}],  # two rows, one assessment: a warning
    }
    for batch_id, rows in batches.items():
        _stage(wh, "assessment_export_rows", f"whole_{batch_id}", rows, batch_id=batch_id)
    together = validate.validate_batches(wh, "whole_batch_rules", "stage", {b: f"whole_{b}" for b in batches})
    alone = {b: validate.validate_batch(wh, "whole_batch_rules", "stage", f"whole_{b}", b) for b in batches}
    for batch_id in batches:
        assert [(c.expectation, c.success) for c in together[batch_id].checks] == [
            (c.expectation, c.success) for c in alone[batch_id].checks
        ]
    assert together[601].failed_critical == [] and together[601].failed_warnings == []
    assert together[602].failed_critical == ["at least two rows"]
    assert together[602].failed_warnings == ["at least two assessments"]
    assert together[603].failed_critical == [] and together[603].failed_warnings == [
        "at least two assessments"
    ]


def test_expect_no_unexpected_rows_gives_gx_own_result_from_one_query(wh, tmp_path, monkeypatch):
    """The project's custom SQL expectation counts and returns the rows GX's
    unexpected_rows_expectation does (past GX's 200 kept rows too), running its query once, not twice."""
    import sqlalchemy

    marked = {
        kind: f'select _batch_id, "Question.ID" from {{batch}} where "Question.ID" <> \'17\' /* {kind} */'
        for kind in ("unexpected_rows_expectation", "expect_no_unexpected_rows")
    }
    suite = {
        "name": "custom_sql_kinds",
        "expectations": [
            {
                "type": kind,
                "kwargs": {"unexpected_rows_query": query},
                "meta": {"severity": "critical", "rule": kind, "row_wise": True},
            }
            for kind, query in marked.items()
        ],
    }
    (tmp_path / "custom_sql_kinds.json").write_text(json.dumps(suite))
    monkeypatch.setattr(validate, "EXPECTATIONS_DIR", tmp_path)
    good = GOOD["assessment_export_rows"]
    bad = [{**good, "Question.ID": str(100 + n)} for n in range(250)]
    _stage(wh, "assessment_export_rows", "kinds_bad", [good, *bad, good], batch_id=701)
    _stage(wh, "assessment_export_rows", "kinds_good", [good, good], batch_id=702)

    executed: list[str] = []

    def count(conn, cursor, statement, *args):
        executed.extend(kind for kind in marked if f"/* {kind} */" in statement)

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", count)
    try:
        failed = validate.validate_batch(wh, "custom_sql_kinds", "stage", "kinds_bad", 701)
        passed = validate.validate_batch(wh, "custom_sql_kinds", "stage", "kinds_good", 702)
    finally:
        sqlalchemy.event.remove(sqlalchemy.engine.Engine, "before_cursor_execute", count)

    gx_own, ours = failed.checks
    assert (gx_own.success, gx_own.unexpected_count) == (False, 250)
    assert (ours.success, ours.unexpected_count, ours.unexpected_values) == (
        gx_own.success,
        gx_own.unexpected_count,
        gx_own.unexpected_values,
    )
    assert len(ours.unexpected_values) == validate.EXAMPLES and ours.details is None
    clean = [(c.success, c.unexpected_count, c.unexpected_values) for c in passed.checks]
    assert clean == [(True, 0, [])] * 2
    # per validated batch: GX's own runs its query twice (rows, then a count), ours once
    assert executed.count("unexpected_rows_expectation") == 4
    assert executed.count("expect_no_unexpected_rows") == 2


def test_data_docs_render_a_validation_with_its_custom_sql_rules(wh):
    """The run's page (GX's views, templates compiled once into gx_state) shows the custom SQL rules
    and is linked from the index."""
    import os
    from pathlib import Path

    good = GOOD["assessment_export_rows"]
    _stage(wh, "assessment_export_rows", "docs_801", [good, {**good, "CP": "Contracts"}], batch_id=801)
    outcome = validate.validate_batch(wh, "assessment_export_rows", "stage", "docs_801", 801)
    assert "CP is a canonical name" in outcome.failed_warnings  # an older tool version's name
    validate.build_docs(wh)

    docs = Path(os.environ["DOCS_DIR"])
    (page,) = (docs / "data_docs" / "validations" / "assessment_export_rows" / "batch_801").rglob("*.html")
    html = page.read_text()
    assert "names_found" in html and "Quest.ID" in html  # the CP and uniqueness rules' queries
    index = (docs / "data_docs" / "index.html").read_text()
    assert "batch_801" in index
    assert any((docs / "gx_state" / "jinja").iterdir())


def test_no_connection_is_left_open_once_a_validation_returns(wh):
    """GX's data sources (two SQLAlchemy engines each, one source per entity and thread) hold no
    idle connection between validations: a run validating a dozen tables once held ~46."""
    good = GOOD["assessment_export_rows"]
    for batch_id in (901, 902):
        _stage(wh, "assessment_export_rows", f"conn_{batch_id}", [good], batch_id=batch_id)
    _stage(wh, "cm_factories", "conn_cm", [GOOD["cm_factories"]])

    def others() -> list[tuple]:
        with db.connect(wh) as conn:
            return conn.execute(
                "select application_name, state, query from pg_stat_activity"
                " where datname = current_database() and pid <> pg_backend_pid()"
            ).fetchall()

    validate.warm_up(wh, "assessment_export_rows")
    assert others() == []
    validate.validate_batches(wh, "assessment_export_rows", "stage", {901: "conn_901", 902: "conn_902"})
    assert others() == []
    validate.validate_batch(wh, "cm_factories", "stage", "conn_cm", 903)
    assert others() == []
