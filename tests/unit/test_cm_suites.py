"""The case-management suites: custom rules select keys only, rules split into row and batch rules."""

from __future__ import annotations

import json

from psycopg import sql

from include.contract import CASE_MANAGEMENT_TABLES
from include.personal_data import PERSONAL_COLUMNS
from include.validate import suites as validate


def _suites():
    return {t: json.loads(validate.suite_path(f"cm_{t}").read_text()) for t in CASE_MANAGEMENT_TABLES}


def test_custom_rules_select_keys_never_everything():
    for table, suite in _suites().items():
        for exp in suite["expectations"]:
            if exp["type"] in validate.CUSTOM_SQL:
                query = exp["kwargs"]["unexpected_rows_query"].lower()
                assert not query.startswith("select *"), (table, exp["meta"]["rule"])
                assert query.startswith("select _source_row,"), (table, exp["meta"]["rule"])


def test_no_gx_rule_reports_values_of_a_personal_column():
    for table, suite in _suites().items():
        personal = PERSONAL_COLUMNS.get(f"cm_{table}", ())
        for exp in suite["expectations"]:
            assert exp["kwargs"].get("column") not in personal, (table, exp["meta"]["rule"])


def test_every_critical_rule_is_a_row_rule_or_a_batch_rule_by_design():
    stage = sql.Identifier("stage", "batch_1")
    batch_rules = set()
    for table, suite in _suites().items():
        for exp in suite["expectations"]:
            if exp["meta"]["severity"] != "critical":
                continue
            condition = validate.row_condition(exp, stage)
            if condition is None:
                batch_rules.add((table, exp["meta"]["rule"]))
    # only shape and key uniqueness hold a batch
    assert {rule for _, rule in batch_rules} == {
        "required columns",
        *(f"{key} unique" for key in ("factory_id", "brand_id", "visit_id", "course_code", "session_id")),
        *(f"{key} unique" for key in ("participant_id", "meeting_id", "item_id")),
        "factory_id x brand_id x since unique",
    }
