"""Nested loops over two large inputs in the plans of dbt's models (a check for ``make bench-scale``).

    python -m benchmarks.plans <warehouse url> <dbt target path>

After a build, every model's compiled ``select`` (from the target's ``run_results.json``) is
planned again with ``EXPLAIN (format json)`` on the built warehouse, and a ``Nested Loop`` is
reported when its outer side is estimated at ``LARGE`` rows or more and its inner side rescans
``LARGE`` rows or more per outer row without an index (sequential scans, materialised or
hashed-free subplans): the quadratic shape that cost 148 s at scale 10 before the staging models
became analysed tables. Prints one line per finding; exit status 1 if there is any.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from include import db

LARGE = 10_000
INDEXED = {"Index Scan", "Index Only Scan", "Bitmap Heap Scan", "Memoize", "Result"}


def _rows_per_loop(node: dict) -> float:
    """Rows a subtree produces per execution, looking through Materialize."""
    if node.get("Node Type") == "Materialize" and node.get("Plans"):
        return _rows_per_loop(node["Plans"][0])
    return float(node.get("Plan Rows", 0))


def _inner_is_indexed(node: dict) -> bool:
    kind = node.get("Node Type")
    if kind in INDEXED:
        return True
    if kind == "Materialize" and node.get("Plans"):
        return _inner_is_indexed(node["Plans"][0])
    return False


def large_nested_loops(plan: dict) -> list[str]:
    """Descriptions of the quadratic nested loops in an EXPLAIN (format json) plan tree."""
    found = []
    stack = [plan]
    while stack:
        node = stack.pop()
        children = node.get("Plans", [])
        if node.get("Node Type") == "Nested Loop" and len(children) == 2:
            outer, inner = children
            outer_rows, inner_rows = _rows_per_loop(outer), _rows_per_loop(inner)
            if outer_rows >= LARGE and inner_rows >= LARGE and not _inner_is_indexed(inner):
                found.append(
                    f"Nested Loop: outer {outer.get('Node Type')} ~{outer_rows:,.0f} rows × inner "
                    f"{inner.get('Node Type')} ~{inner_rows:,.0f} rows"
                )
        stack.extend(children)
    return found


def check(url: str, target: Path) -> dict[str, list[str]]:
    """Model name -> its quadratic nested loops, for every model of the run in ``target``."""
    results = json.loads((Path(target) / "run_results.json").read_text()).get("results", [])
    findings: dict[str, list[str]] = {}
    with db.connect(url) as conn:
        for result in results:
            unique_id = result.get("unique_id", "")
            code = (result.get("compiled_code") or "").strip().rstrip(";")
            if not unique_id.startswith("model.") or not code.lower().lstrip("( \n").startswith(
                ("with", "select")
            ):
                continue
            try:
                plan = conn.execute(f"explain (format json) {code}").fetchone()[0][0]["Plan"]
            except Exception as err:  # a model whose SQL cannot be planned alone: say so, go on
                conn.rollback()
                findings[unique_id.split(".")[-1]] = [f"not planned: {str(err).splitlines()[0]}"]
                continue
            loops = large_nested_loops(plan)
            if loops:
                findings[unique_id.split(".")[-1]] = loops
    return findings


def main(argv: list[str]) -> int:
    url, target = argv
    findings = check(url, Path(target))
    for model, loops in findings.items():
        for loop in loops:
            print(f"{model}: {loop}")
    if not findings:
        print("no model plan has a nested loop over two large inputs")
    return (
        1 if any(not loop.startswith("not planned") for loops in findings.values() for loop in loops) else 0
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
