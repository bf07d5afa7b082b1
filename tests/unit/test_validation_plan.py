"""The pass planner of a validation of several batches together: pure, no GX, no database."""

from __future__ import annotations

from include.validate import plan

NOT_NULL = {
    "type": "expect_column_values_to_not_be_null",
    "kwargs": {"column": "a"},
    "meta": {"rule": "a not null"},
}
ROWS = {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}, "meta": {"rule": "rows"}}
ROW_WISE = {
    "type": "expect_no_unexpected_rows",
    "kwargs": {"unexpected_rows_query": "select _batch_id, a from {batch} where a < 0"},
    "meta": {"rule": "a not negative", "row_wise": True},
}
WHOLE_FILE = {
    "type": "expect_no_unexpected_rows",
    "kwargs": {"unexpected_rows_query": "select 1 from {batch} having count(*) < 10"},
    "meta": {"rule": "ten rows"},
}
SUITE = [NOT_NULL, ROWS, ROW_WISE, WHOLE_FILE]
CLEAN = plan.Finding(clean=True, rows_name_batches=False, wants_examples=False)
FAILED = plan.Finding(clean=False, rows_name_batches=False, wants_examples=True)  # a column expectation
ROWS_FOUND = plan.Finding(clean=False, rows_name_batches=True, wants_examples=False)  # a custom query's rows


def keys(expectations):
    return [plan.key_of(e["meta"]) for e in expectations]


def test_one_batch_runs_the_suite_on_its_table_then_asks_failures_for_examples():
    assert plan.union_pass(SUITE, [7]) == SUITE
    found = {("a not null", None): FAILED, ("rows", None): CLEAN, ("a not negative", None): ROWS_FOUND}
    found[("ten rows", None)] = CLEAN
    assert keys(plan.follow_up_pass(SUITE, [7], found)) == [("a not null", None)]
    assert plan.own_table_pass(SUITE, [7]) == []
    assert plan.result_for("a not null", 7, found, single=True) == (("a not null", None), False)


def test_several_batches_union_safe_once_others_per_batch_and_whole_file_rules_on_own_tables():
    first = plan.union_pass(SUITE, [1, 2])
    assert keys(first) == [("a not null", None), ("rows", 1), ("rows", 2), ("a not negative", None)]
    assert first[1]["kwargs"]["row_condition"] == {
        "type": "comparison",
        "column": {"name": "_batch_id"},
        "operator": "==",
        "parameter": 1,
    }
    assert keys(plan.own_table_pass(SUITE, [1, 2])) == [("ten rows", None)]


def test_the_follow_up_pass_tells_failures_apart_by_batch_only_when_the_rows_cannot():
    found = {
        ("a not null", None): FAILED,  # run again per batch, with examples
        ("rows", 1): CLEAN,
        ("rows", 2): FAILED,  # failed on batch 2 alone: examples for batch 2
        ("a not negative", None): ROWS_FOUND,  # its rows carry _batch_id: no second query
    }
    again = plan.follow_up_pass(SUITE, [1, 2], found)
    assert keys(again) == [("a not null", 1), ("a not null", 2), ("rows", 2)]
    custom = plan.for_batch(ROW_WISE, 2)
    assert custom["kwargs"]["unexpected_rows_query"].endswith("as rows_found where _batch_id = 2")


def test_a_clean_union_needs_no_second_pass_and_is_every_batch_result():
    found = {
        ("a not null", None): CLEAN,
        ("rows", 1): CLEAN,
        ("rows", 2): CLEAN,
        ("a not negative", None): CLEAN,
    }
    assert plan.follow_up_pass(SUITE, [1, 2], found) == []
    assert plan.result_for("a not null", 2, found, single=False) == (("a not null", None), False)
    assert plan.result_for("rows", 2, found, single=False) == (("rows", 2), False)


def test_each_batch_gets_its_share_of_a_failed_union_result():
    found = {("a not negative", None): ROWS_FOUND, ("a not null", None): FAILED, ("a not null", 1): FAILED}
    assert plan.result_for("a not negative", 1, found, single=False) == (("a not negative", None), True)
    assert plan.result_for("a not null", 1, found, single=False) == (("a not null", 1), False)


def test_a_row_condition_is_kept_when_restricting_to_a_batch():
    ncq = {
        "type": "expect_column_values_to_be_in_set",
        "kwargs": {"column": "f", "value_set": ["0"], "row_condition": {"type": "comparison", "x": 1}},
        "meta": {"rule": "f"},
    }
    condition = plan.for_batch(ncq, 3)["kwargs"]["row_condition"]
    assert condition["type"] == "and" and condition["conditions"][0] == {"type": "comparison", "x": 1}
    assert ncq["kwargs"]["row_condition"] == {"type": "comparison", "x": 1}  # the suite is not changed
