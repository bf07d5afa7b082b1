"""benchmarks.plans: which nested loops count as quadratic."""

from __future__ import annotations

from benchmarks.plans import large_nested_loops


def _scan(kind: str, rows: int) -> dict:
    return {"Node Type": kind, "Plan Rows": rows}


def test_a_nested_loop_over_two_large_scans_is_reported():
    plan = {
        "Node Type": "Hash Join",
        "Plans": [
            {"Node Type": "Nested Loop", "Plans": [_scan("Seq Scan", 100_000), _scan("Seq Scan", 50_000)]},
            _scan("Seq Scan", 10),
        ],
    }
    assert len(large_nested_loops(plan)) == 1


def test_materialised_large_inner_side_is_reported_too():
    inner = {"Node Type": "Materialize", "Plan Rows": 50_000, "Plans": [_scan("Subquery Scan", 50_000)]}
    plan = {"Node Type": "Nested Loop", "Plans": [_scan("Seq Scan", 20_000), inner]}
    assert large_nested_loops(plan)


def test_index_lookups_and_small_sides_are_fine():
    indexed = {
        "Node Type": "Nested Loop",
        "Plans": [_scan("Seq Scan", 100_000), _scan("Index Scan", 100_000)],
    }
    small = {"Node Type": "Nested Loop", "Plans": [_scan("Seq Scan", 12), _scan("Seq Scan", 1_000_000)]}
    assert large_nested_loops(indexed) == [] and large_nested_loops(small) == []
