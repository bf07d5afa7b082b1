"""The code the benchmarks run in child interpreters (``python -c``) is text the linters and the
import graph never see: a module moved under it fails only at bench time. Check what it imports
and every attribute it takes from what it imported."""

from __future__ import annotations

import ast
import importlib

import pytest

from benchmarks import load, scale

SNIPPETS = {"bench-load child": load.CHILD, "bench-scale dbt": scale._DBT_SNIPPET}


def _imported(snippet: str) -> dict[str, object]:
    """The names a snippet binds by import, and what each is."""
    bound: dict[str, object] = {}
    for node in ast.walk(ast.parse(snippet)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound[alias.asname or alias.name] = importlib.import_module(alias.name)
        elif isinstance(node, ast.ImportFrom):
            module = importlib.import_module(node.module)
            for alias in node.names:
                if not hasattr(module, alias.name):
                    importlib.import_module(f"{node.module}.{alias.name}")  # a submodule, or fails
                bound[alias.asname or alias.name] = getattr(module, alias.name)
    return bound


@pytest.mark.parametrize("snippet", SNIPPETS.values(), ids=SNIPPETS.keys())
def test_every_name_a_child_snippet_uses_exists(snippet):
    bound = _imported(snippet)
    for node in ast.walk(ast.parse(snippet)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound:
            assert hasattr(bound[node.value.id], node.attr), f"{node.value.id} has no {node.attr}"


@pytest.mark.parametrize(
    "broken",
    ["from include import no_such_module", "from include import transform; transform.run_dbt([])"],
)
def test_the_check_sees_a_moved_module(broken):
    with pytest.raises((AssertionError, ImportError)):
        test_every_name_a_child_snippet_uses_exists(broken)
