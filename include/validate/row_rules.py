"""Rules about a row and rules about a batch: which staged rows break a failed critical rule, in SQL.

A bad row must not cost the rows beside it. :func:`row_condition` turns an expectation into the SQL
condition true for the staged rows that break it, or None for a rule about the batch as a whole
(its shape, key uniqueness, row counts: :data:`BATCH_RULE_TYPES`), which holds the batch. Pure: no
GX, no database (the loader runs the conditions; ``tests/unit`` checks them).
"""

from __future__ import annotations

from psycopg import sql

from include.validate import sql_columns
from include.validate.plan import CUSTOM_SQL


def label(exp: dict) -> str:
    """A readable, stable name of an expectation: its meta.rule, else its type and columns."""
    meta = exp.get("meta") or {}
    if meta.get("rule"):
        return meta["rule"]
    kwargs = exp.get("kwargs", {})
    cols = (
        kwargs.get("column") or kwargs.get("column_list") or [kwargs.get("column_A"), kwargs.get("column_B")]
    )
    cols = cols if isinstance(cols, str) else ",".join(c for c in cols if c)
    return f"{exp['type']}({cols})"


BATCH_RULE_TYPES = frozenset(
    {
        "expect_table_columns_to_match_set",
        "expect_table_columns_to_match_ordered_list",
        "expect_table_column_count_to_equal",
        "expect_table_row_count_to_be_between",
        "expect_table_row_count_to_equal",
        "expect_column_to_exist",
        "expect_column_values_to_be_unique",
        "expect_compound_columns_to_be_unique",
    }
)
"""Rules about a batch as a whole (its shape, key uniqueness, row counts): a failure holds the batch."""


def row_condition(exp: dict, table: sql.Composable) -> sql.Composable | None:
    """SQL true for the staged rows of ``table`` that break ``exp``; None for a rule about the batch.

    A critical row rule quarantines just those rows (the rest of the batch loads). Custom SQL rules
    are row rules when their query selects ``_source_row`` (the project's convention for case
    management: keys only) or when ``meta.quarantine_by`` names the columns by which the query's
    rows pick out the staged rows that break it (the export rules, which report one row per file
    and value). A GX ``row_condition`` narrows the rule to the rows it selects.
    """
    kind, kwargs = exp["type"], exp["kwargs"]
    if kind in BATCH_RULE_TYPES:
        return None
    if kwargs.get("row_condition"):
        narrowed = gx_condition_sql(kwargs["row_condition"])
        broken = row_condition(
            {**exp, "kwargs": {k: v for k, v in kwargs.items() if k != "row_condition"}}, table
        )
        if narrowed is None or broken is None:
            return None
        return sql.SQL("({}) and ({})").format(narrowed, broken)
    if kind in CUSTOM_SQL:
        return _custom_rows(exp, table)
    return _column_rule_rows(kind, kwargs)


def _column_rule_rows(kind: str, kwargs: dict) -> sql.Composable | None:
    """SQL true for the rows breaking one of GX's column expectations (None: a kind not translated)."""
    col = sql.Identifier(kwargs["column"]) if "column" in kwargs else None
    if kind == "expect_column_values_to_not_be_null":
        return sql.SQL("{} is null").format(col)
    if kind == "expect_column_values_to_be_in_set":
        values = sql.SQL(", ").join(map(sql.Literal, kwargs["value_set"]))
        return sql.SQL("{c} is not null and {c} not in ({v})").format(c=col, v=values)
    if kind == "expect_column_values_to_be_between":
        parts = []
        for bound, op, strict_op, strict in (
            ("min_value", "<", "<=", "strict_min"),
            ("max_value", ">", ">=", "strict_max"),
        ):
            if kwargs.get(bound) is not None:
                parts.append(
                    sql.SQL("{} {} {}").format(
                        col, sql.SQL(strict_op if kwargs.get(strict) else op), sql.Literal(kwargs[bound])
                    )
                )
        return sql.SQL("({})").format(sql.SQL(" or ").join(parts)) if parts else None
    if kind in ("expect_column_values_to_match_regex", "expect_column_values_to_not_match_regex"):
        op = "!~" if kind == "expect_column_values_to_match_regex" else "~"
        return sql.SQL("{c} is not null and {c}::text {op} {r}").format(
            c=col, op=sql.SQL(op), r=sql.Literal(kwargs["regex"])
        )
    if kind == "expect_column_pair_values_a_to_be_greater_than_b":
        a, b = sql.Identifier(kwargs["column_A"]), sql.Identifier(kwargs["column_B"])
        op = sql.SQL(">=" if kwargs.get("or_equal") else ">")
        return sql.SQL("{a} is not null and {b} is not null and not ({a} {op} {b})").format(a=a, b=b, op=op)
    return None


def _custom_rows(exp: dict, table: sql.Composable) -> sql.Composable | None:
    """SQL true for the rows a custom rule's query names (by ``_source_row`` or ``meta.quarantine_by``)."""
    query = sql.SQL(exp["kwargs"]["unexpected_rows_query"].replace("{batch}", table.as_string(None)))
    if sql_columns.selects(exp["kwargs"]["unexpected_rows_query"], "_source_row"):
        return sql.SQL("_source_row in (select _source_row from ({}) as rows_found)").format(query)
    by = (exp.get("meta") or {}).get("quarantine_by")
    if not by:
        return None
    cols = sql.SQL(", ").join(map(sql.Identifier, by))
    return sql.SQL("({cols}) in (select {cols} from ({query}) as rows_found)").format(cols=cols, query=query)


_SQL_OPERATORS = {"==": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def gx_condition_sql(condition: dict) -> sql.Composable | None:
    """A GX 1.x ``row_condition`` (its JSON form) as SQL; None for a kind this does not translate."""
    kind = condition.get("type")
    if kind in ("and", "or"):
        parts = [gx_condition_sql(c) for c in condition.get("conditions") or []]
        if not parts or any(p is None for p in parts):
            return None
        return sql.SQL("({})").format(sql.SQL(f" {kind} ").join(parts))
    column = (condition.get("column") or {}).get("name")
    if column is None:
        return None
    col = sql.Identifier(column)
    if kind == "nullity":
        return sql.SQL("{} is null" if condition.get("is_null", True) else "{} is not null").format(col)
    if kind != "comparison":
        return None
    operator, parameter = condition.get("operator"), condition.get("parameter")
    if operator in ("IN", "NOT_IN"):
        values = sql.SQL(", ").join(map(sql.Literal, parameter))
        return sql.SQL("{} {} ({})").format(col, sql.SQL("in" if operator == "IN" else "not in"), values)
    if operator not in _SQL_OPERATORS:
        return None
    return sql.SQL("{} {} {}").format(col, sql.SQL(_SQL_OPERATORS[operator]), sql.Literal(parameter))


def split(expectations: list[dict], failed: list[str], table: sql.Composable):
    """The failed critical rules as (row rules: [(rule, condition)], batch rules: [rule])."""
    by_rule = {label(e): e for e in expectations}
    rows, batch = [], []
    for rule in failed:
        condition = row_condition(by_rule[rule], table) if rule in by_rule else None
        if condition is None:
            batch.append(rule)
        else:
            rows.append((rule, condition))
    return rows, batch
