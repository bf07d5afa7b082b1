"""Which expectations run where, when several staged batches of one entity are validated together.

Pure functions of plain data (the suite's expectations as dicts, the batch ids, and what GX found,
summed up as :class:`Finding`): no GX, no database, unit-tested alone. :mod:`include.validate.suites`
runs the passes this module plans and assembles each batch's results as it says.

With one batch, the suite runs on its own table, then the failed column expectations once more
for a few examples. With several, on a view that is the union of their tables:

1. **union pass** (:func:`union_pass`): each union-safe expectation once for all batches (one that
   finds nothing there found nothing in any batch); each other expectation whose rows can be told
   apart by batch, once per batch on its rows of the union (:func:`for_batch`);
2. **follow-up pass** (:func:`follow_up_pass`): what the union pass found is told apart by batch
   (a custom query's rows carry their ``_batch_id``); anything else runs again per batch, with
   examples; and failures found per batch are asked for their examples;
3. **own-table pass** (:func:`own_table_pass`): an expectation that can be neither (a custom query
   about a batch as a whole) runs on each batch's own table.

:func:`result_for` then says, per batch and expectation, which result is that batch's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# Expectations whose clean result on several batches at once proves every one of them clean: each
# row is judged on its own, or (uniqueness) a clean whole has clean parts. An aggregate
# (row count, mean, distinct values, ...) does not decompose so and is run batch by batch.
# A custom SQL expectation (:data:`CUSTOM_SQL`) qualifies when its suite says so (``meta.row_wise``).
UNION_SAFE = frozenset(
    {
        "expect_column_to_exist",
        "expect_table_columns_to_match_set",
        "expect_table_columns_to_match_ordered_list",
        "expect_table_column_count_to_equal",
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_null",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_not_be_in_set",
        "expect_column_values_to_be_between",
        "expect_column_values_to_match_regex",
        "expect_column_values_to_not_match_regex",
        "expect_column_values_to_match_regex_list",
        "expect_column_values_to_not_match_regex_list",
        "expect_column_values_to_match_like_pattern",
        "expect_column_values_to_not_match_like_pattern",
        "expect_column_value_lengths_to_be_between",
        "expect_column_value_lengths_to_equal",
        "expect_column_values_to_be_unique",
        "expect_compound_columns_to_be_unique",
        "expect_select_column_values_to_be_unique_within_record",
        "expect_column_pair_values_to_be_equal",
        "expect_column_pair_values_a_to_be_greater_than_b",
        "expect_multicolumn_sum_to_equal",
    }
)

# Custom SQL expectations: a query over ``{batch}`` whose rows are the unexpected ones. The suites use
# the project's ``expect_no_unexpected_rows`` (include/validate/gx_custom.py: GX's own, with the query run
# once instead of twice); GX's ``unexpected_rows_expectation`` is handled the same way.
CUSTOM_SQL = frozenset({"expect_no_unexpected_rows", "unexpected_rows_expectation"})

Key = tuple[str, int | None]
"""A result's key in a run: the expectation's rule and the batch it was restricted to (None: all)."""


@dataclass(frozen=True)
class Finding:
    """What the planner needs to know of one GX result."""

    clean: bool  # succeeded and found no unexpected row at all (``mostly`` may let a few pass)
    rows_name_batches: bool  # a custom query's result holding every one of its rows (each has _batch_id)
    wants_examples: bool  # a failed column expectation: a second run fetches a few unexpected values


def key_of(meta: dict) -> Key:
    """An expectation's key in a run's results: its rule and, when restricted to one, its batch."""
    return meta["rule"], meta.get("batch_id")


def union_safe(exp: dict) -> bool:
    """Whether a clean result on the union proves every batch clean."""
    if exp["type"] in CUSTOM_SQL:
        return bool(exp["meta"].get("row_wise"))
    return exp["type"] in UNION_SAFE


def filterable(exp: dict) -> bool:
    """Whether one batch's rows can be picked out of the union for this expectation."""
    return exp["type"] not in CUSTOM_SQL or bool(exp["meta"].get("row_wise"))


def for_batch(exp: dict, batch_id: int) -> dict:
    """The expectation restricted to one batch's rows of the union view."""
    kwargs = dict(exp["kwargs"])
    if exp["type"] in CUSTOM_SQL:
        # row_wise queries select _batch_id; PostgreSQL pushes the filter down to one stage table
        # (not past an 'offset 0' fence, as in the CP and registry rules: those scan the run)
        query = kwargs["unexpected_rows_query"]
        kwargs["unexpected_rows_query"] = (
            f"select * from ({query}) as rows_found where _batch_id = {int(batch_id)}"
        )
    else:
        condition = {
            "type": "comparison",
            "column": {"name": "_batch_id"},
            "operator": "==",
            "parameter": batch_id,
        }
        if kwargs.get("row_condition"):
            condition = {"type": "and", "conditions": [kwargs["row_condition"], condition]}
        kwargs["row_condition"] = condition
    return {**exp, "kwargs": kwargs, "meta": {**exp["meta"], "batch_id": batch_id}}


def union_pass(expectations: list[dict], batch_ids: Iterable[int]) -> list[dict]:
    """The first pass: on the one batch's table, or on the union view of several."""
    ids = list(batch_ids)
    if len(ids) == 1:
        return list(expectations)
    planned: list[dict] = []
    for exp in expectations:
        if union_safe(exp):
            planned.append(exp)
        elif filterable(exp):
            planned += [for_batch(exp, b) for b in ids]
    return planned


def follow_up_pass(
    expectations: list[dict], batch_ids: Iterable[int], found: Mapping[Key, Finding]
) -> list[dict]:
    """The second pass (with examples), from what the first found: shares per batch, and examples."""
    ids = list(batch_ids)
    planned: list[dict] = []
    for exp in expectations:
        rule = exp["meta"]["rule"]
        whole = found.get((rule, None))
        if whole is not None and len(ids) == 1:
            planned += [exp] if whole.wants_examples else []
        elif whole is not None and not (whole.clean or whole.rows_name_batches):
            planned += [for_batch(exp, b) for b in ids]
        elif whole is None:
            planned += [for_batch(exp, b) for b in ids if _wants_examples(found.get((rule, b)))]
    return planned


def own_table_pass(expectations: list[dict], batch_ids: Iterable[int]) -> list[dict]:
    """Expectations to run on each batch's own table (with examples), after the union's passes."""
    if len(list(batch_ids)) == 1:
        return []
    return [e for e in expectations if not (union_safe(e) or filterable(e))]


def result_for(rule: str, batch_id: int, found: Mapping[Key, Finding], single: bool) -> tuple[Key, bool]:
    """Which result is this batch's for ``rule``: (its key, whether only this batch's rows of it count).

    The batch's own result when there is one (a pass restricted to it); else the whole run's, as it
    is when clean (or for the only batch), or (a custom query's) its rows of this batch.
    """
    if (rule, batch_id) in found:
        return (rule, batch_id), False
    whole = found[(rule, None)]
    return (rule, None), not (single or whole.clean)


def _wants_examples(finding: Finding | None) -> bool:
    return finding is not None and finding.wants_examples
