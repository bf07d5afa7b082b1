"""The export suite's critical rules: row rules (quarantine the row), batch rules (hold the file)."""

from __future__ import annotations

from psycopg import sql

from include.validate import suites as validate

STAGE = sql.Identifier("stage", "batch_1")


def test_only_shape_and_key_uniqueness_hold_an_export_file():
    suite = validate.load_suite_json("assessment_export_rows")
    batch_rules = {
        exp["meta"]["rule"]
        for exp in suite["expectations"]
        if exp["meta"]["severity"] == "critical" and validate.row_condition(exp, STAGE) is None
    }
    assert batch_rules == {"required columns", "Quest.ID x Question.ID unique in a file"}


def test_a_rule_narrowed_by_a_gx_row_condition_is_a_row_rule_on_those_rows():
    exp = {
        "type": "expect_column_values_to_be_in_set",
        "kwargs": {
            "column": "Finding",
            "value_set": ["0", "1"],
            "row_condition": {
                "type": "comparison",
                "column": {"name": "Question.type"},
                "operator": "==",
                "parameter": "NCQ",
            },
        },
        "meta": {"rule": "r", "severity": "critical"},
    }
    text = validate.row_condition(exp, STAGE).as_string(None)
    assert text == """("Question.type" = 'NCQ') and ("Finding" is not null and "Finding" not in ('0', '1'))"""


def test_gx_row_conditions_in_sql():
    def as_sql(condition):
        found = validate.gx_condition_sql(condition)
        return None if found is None else found.as_string(None)

    a = {"type": "comparison", "column": {"name": "a"}, "operator": ">=", "parameter": 3}
    b = {"type": "comparison", "column": {"name": "b"}, "operator": "IN", "parameter": ["x", "y"]}
    n = {"type": "nullity", "column": {"name": "c"}, "is_null": False}
    assert as_sql(a) == '"a" >= 3'
    assert as_sql({"type": "and", "conditions": [a, b]}) == """("a" >= 3 and "b" in ('x', 'y'))"""
    assert as_sql({"type": "or", "conditions": [n, a]}) == '("c" is not null or "a" >= 3)'
    # what cannot be translated makes the rule a batch rule, never a wrong row filter
    assert as_sql({"type": "pass_through", "pass_through_filter": "a > 1"}) is None
    assert as_sql({"type": "and", "conditions": [a, {"type": "pass_through"}]}) is None


def test_a_custom_rule_names_its_rows_by_its_quarantine_by_columns():
    exp = {
        "type": "expect_no_unexpected_rows",
        "kwargs": {"unexpected_rows_query": "select _batch_id, d, count(*) from {batch} group by 1, 2"},
        "meta": {"rule": "r", "severity": "critical", "quarantine_by": ["d"]},
    }
    assert validate.row_condition(exp, STAGE).as_string(None) == (
        '("d") in (select "d" from (select _batch_id, d, count(*) from "stage"."batch_1" group by 1, 2)'
        " as rows_found)"
    )
    exp["meta"].pop("quarantine_by")
    assert validate.row_condition(exp, STAGE) is None  # a rule about the file: holds it
