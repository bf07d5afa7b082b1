"""Which columns a custom SQL rule's query returns: a parse of the query, not a split of its text."""

from __future__ import annotations

import json

import pytest

from include.validate import sql_columns
from include.validate.sql_columns import EVERY_STAGED_COLUMN, output_columns, selects
from include.validate.suites import EXPECTATIONS_DIR


@pytest.mark.parametrize(
    ("query", "columns"),
    [
        (
            "select _source_row, visit_id from {batch} where visit_date > current_date",
            {"_source_row", "visit_id"},
        ),
        # aliases name the output column; a qualified column is its own name
        ('select s._source_row, count(*) as "Rows", min(x) m from {batch} s', {"_source_row", "Rows", "m"}),
        ("select t.y z from {batch} t", {"z"}),
        # PostgreSQL's names: unquoted folded to lower case, quoted kept as written
        ('select _Batch_Id, "Quest.ID", "say ""hi""" from {batch}', {"_batch_id", "Quest.ID", 'say "hi"'}),
        # a function without an alias is named after the function; an expression has no useful name
        ("select count(*), a + b, 1 from {batch}", {"count"}),
        # a column named like a keyword
        (
            "select _batch_id, rows from (select _batch_id, count(*) as rows from {batch} group by 1) as f",
            {"_batch_id", "rows"},
        ),
        # distinct, distinct on
        ("select distinct _source_row from {batch}", {"_source_row"}),
        ("select distinct on (a) _source_row, a from {batch} order by a", {"_source_row", "a"}),
        # comments anywhere
        ("-- the rule\nselect /* keys only */ _source_row, -- row\n id from {batch}", {"_source_row", "id"}),
        # the select list of a subquery is not the query's
        ("select id from (select _source_row, id from {batch}) as s", {"id"}),
        ('select "CP" from {batch} where _source_row in (select _source_row from {batch})', {"CP"}),
        # a union is named by its first select
        ("select a from {batch} union all select _source_row from {batch}", {"a"}),
        # upper case keywords, no whitespace around the list
        ("SELECT _SOURCE_ROW,ID FROM {batch} WHERE ID IS NULL", {"_source_row", "id"}),
        # braces of a regular expression's count ({{ }}: GX formats the query)
        ("select _source_row from {batch} where x ~ '^[0-9]{{1,9}}$'", {"_source_row"}),
    ],
)
def test_the_output_columns_are_read_from_the_select_list(query, columns):
    assert output_columns(query) == columns


@pytest.mark.parametrize(
    ("query", "columns"),
    [
        ("select * from {batch} where x is null", {EVERY_STAGED_COLUMN}),
        ("select b.* from {batch} as b join raw.cm_factories r on r.id = b.id", {EVERY_STAGED_COLUMN}),
        # a star over another table: nothing known
        ("select * from raw.cm_factories", set()),
        ("select r.* from {batch} b join raw.cm_factories r on r.id = b.id", set()),
        # a star over a subquery is that subquery's columns
        ("select * from (select _source_row, id from {batch}) as s where id > 1", {"_source_row", "id"}),
        ("select s.*, 1 from (select * from {batch}) s", {EVERY_STAGED_COLUMN}),
        # over a WITH query, which may read another
        (
            "with a as (select _batch_id, id from {batch}), b as (select * from a) select * from b",
            {"_batch_id", "id"},
        ),
    ],
)
def test_a_star_stands_for_the_columns_of_what_it_selects_from(query, columns):
    assert output_columns(query) == columns


def test_selects_knows_every_staged_column_behind_a_star():
    assert selects("select * from {batch}", "_batch_id")
    assert selects("select * from {batch}", "_source_row")
    assert not selects("select * from (select id from {batch}) s", "_batch_id")
    assert not selects("select id, min(_source_row) as first_row from {batch} group by id", "_source_row")
    assert not selects("select _batch_id_copy from {batch}", "_batch_id")
    assert not selects("", "_batch_id")


def test_every_custom_rule_of_the_suites_selects_what_its_use_needs():
    """cm_* rules select _source_row (row rules); row_wise export and survey rules select _batch_id."""
    for path in sorted(EXPECTATIONS_DIR.glob("*.json")):
        for exp in json.loads(path.read_text())["expectations"]:
            query = exp["kwargs"].get("unexpected_rows_query")
            if query is None:
                continue
            if path.name.startswith("cm_"):
                assert selects(query, "_source_row"), (path.name, exp["meta"]["rule"])
            if exp["meta"].get("row_wise"):
                assert selects(query, "_batch_id"), (path.name, exp["meta"]["rule"])


def test_the_module_is_pure():
    """No GX, no database: sqlparse only."""
    source = (sql_columns.__file__ and open(sql_columns.__file__).read()) or ""
    assert "great_expectations" not in source and "psycopg" not in source
