"""The suites in expectations/: one per source entity, every expectation with a severity and a rule name."""

from __future__ import annotations

import json

import pytest

from include.extract.case_management import spec
from include.extract.columns import CONTRACT_COLUMNS
from include.extract.surveys import INSTRUMENTS, raw_columns
from include.orchestration.assets import CASE_MANAGEMENT_TABLES
from include.validate import suites as validate

ENTITIES = [
    "assessment_export_rows",
    *(f"cm_{t}" for t in CASE_MANAGEMENT_TABLES),
    *(f"survey_{i}_rows" for i in INSTRUMENTS),
]


def _columns(entity: str) -> set[str]:
    if entity == "assessment_export_rows":
        return set(CONTRACT_COLUMNS)
    if entity.startswith("survey_"):
        return set(raw_columns(entity.split("_")[1]))
    return set(spec(entity[3:]).columns)


def test_one_suite_per_source_entity():
    on_disk = {p.stem for p in validate.EXPECTATIONS_DIR.glob("*.json")}
    assert on_disk == set(ENTITIES)


@pytest.mark.parametrize("entity", ENTITIES)
def test_every_expectation_has_severity_rule_and_known_columns(entity):
    suite = validate.load_suite_json(entity)  # raises on a missing severity
    assert suite["name"] == entity
    rules = [e["meta"]["rule"] for e in suite["expectations"]]
    assert len(rules) == len(set(rules))
    columns = _columns(entity)
    for exp in suite["expectations"]:
        kw = exp["kwargs"]
        named = [kw.get("column"), kw.get("column_A"), kw.get("column_B"), *kw.get("column_list", [])]
        assert {c for c in named if c} <= columns, exp["meta"]["rule"]
    required = next(e for e in suite["expectations"] if e["type"] == "expect_table_columns_to_match_set")
    assert set(required["kwargs"]["column_set"]) == columns | {"_source_row"}
    assert required["meta"]["severity"] == "critical"


def test_a_missing_severity_is_refused(tmp_path, monkeypatch):
    (tmp_path / "x.json").write_text(
        json.dumps(
            {
                "name": "x",
                "expectations": [
                    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}, "meta": {}}
                ],
            }
        )
    )
    monkeypatch.setattr(validate, "EXPECTATIONS_DIR", tmp_path)
    with pytest.raises(ValueError, match="no valid meta.severity"):
        validate.load_suite_json("x")


def test_a_row_wise_query_must_select_the_batch_id(tmp_path, monkeypatch):
    def suite(query: str) -> None:
        exp = {
            "type": "unexpected_rows_expectation",
            "kwargs": {"unexpected_rows_query": query},
            "meta": {"severity": "warning", "rule": "r", "row_wise": True},
        }
        (tmp_path / "x.json").write_text(json.dumps({"name": "x", "expectations": [exp]}))

    monkeypatch.setattr(validate, "EXPECTATIONS_DIR", tmp_path)
    suite("select _source_row, a from {batch} where a < 0")
    with pytest.raises(ValueError, match="must select _batch_id"):
        validate.load_suite_json("x")
    suite("select _batch_id, _source_row, a from {batch} where a < 0")
    assert validate.load_suite_json("x")["expectations"][0]["meta"]["row_wise"] is True
    suite("select * from {batch} where a < 0")
    assert validate.load_suite_json("x")["name"] == "x"
