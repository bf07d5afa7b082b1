"""Which columns a custom SQL rule's query returns, read from a parse of the query (sqlparse).

A custom SQL rule (``expect_no_unexpected_rows``) is a query over ``{batch}``, the staged table,
whose rows are the unexpected ones. What it selects decides what the loader can do with it: a query
that returns ``_source_row`` names the staged rows that break it (a row rule,
:mod:`include.validate.row_rules`); one that returns ``_batch_id`` can be run once over several
batches and its rows told apart by batch (``meta.row_wise``, :mod:`include.validate.suites`).

:func:`output_columns` reads the outermost ``SELECT`` list as PostgreSQL names its columns: an alias
(``count(*) as copies``), else the column's own name (``s._source_row`` is ``_source_row``), unquoted
names folded to lower case, quoted ones kept as written. A ``*`` (or ``s.*``) stands for the
columns of what it selects from: every staged column (:data:`EVERY_STAGED_COLUMN`) for ``{batch}``,
the output columns of a subquery or a ``WITH`` query, nothing known for any other table. Comments
are ignored. Pure: no database, no GX (``tests/unit/test_sql_columns.py``).
"""

from __future__ import annotations

import sqlparse
from sqlparse import sql as parsed
from sqlparse import tokens as T

BATCH = "{batch}"
"""The staged table's placeholder in a custom query (GX substitutes it)."""

EVERY_STAGED_COLUMN = "{batch}.*"
"""In :func:`output_columns`: the query returns every column of the staged table."""

_BATCH_NAME = "bw_placeholder_staged_batch"  # stands for {batch} while parsing ({ } are not SQL)
_CLAUSE_ENDS = {"where", "group by", "having", "order by", "limit", "offset", "union", "union all"}
_CLAUSE_ENDS |= {"intersect", "except", "window", "fetch", "for"}
Columns = frozenset[str]


def output_columns(query: str) -> Columns:
    """The names of the columns ``query`` returns (:data:`EVERY_STAGED_COLUMN` for ``{batch}``'s ``*``)."""
    statements = [s for s in sqlparse.parse(query.replace(BATCH, _BATCH_NAME)) if _meaningful(s.tokens)]
    return _select_columns(statements[0].tokens, {}) if statements else frozenset()


def selects(query: str, column: str) -> bool:
    """Whether ``query`` returns ``column`` (by name, or as one of every staged column)."""
    found = output_columns(query)
    return column in found or EVERY_STAGED_COLUMN in found


def _meaningful(tokens) -> list:
    """The tokens without whitespace and comments."""
    return [
        t for t in tokens if not (t.is_whitespace or isinstance(t, parsed.Comment) or t.ttype in T.Comment)
    ]


def _select_columns(tokens, outer_ctes: dict[str, Columns]) -> Columns:
    """The output columns of the first ``SELECT`` among ``tokens`` (a statement or a parenthesis)."""
    tokens = _meaningful(tokens)
    ctes = dict(outer_ctes)
    position = 0
    while position < len(tokens) and tokens[position].ttype is not T.DML:
        if tokens[position].ttype is T.Keyword.CTE:
            position += 1
            ctes.update(_cte_columns(tokens[position], ctes) if position < len(tokens) else {})
        position += 1
    if position == len(tokens) or tokens[position].normalized != "SELECT":
        return frozenset()
    items, sources = _split_select(tokens[position + 1 :])
    columns_of = {alias: columns for alias, columns in _sources(sources, ctes)}
    every_source = frozenset().union(*columns_of.values()) if columns_of else frozenset()
    names: set[str] = set()
    for item in items:
        names |= _item_columns(item, columns_of, every_source)
    return frozenset(names)


def _split_select(tokens: list) -> tuple[list, list]:
    """(the select list's items, the ``FROM`` clause's tokens) of the tokens after ``SELECT``."""
    items, sources, in_from, previous = [], [], False, None
    for token in tokens:
        keyword = token.normalized.lower() if token.is_keyword else None
        if isinstance(token, parsed.Where) or keyword in _CLAUSE_ENDS:
            break
        if keyword == "from":
            in_from = True
        elif in_from:
            sources.append(token)
        elif isinstance(token, parsed.IdentifierList):
            items += _meaningful(t for t in token.tokens if t.ttype is not T.Punctuation)
        elif items or not (keyword in ("distinct", "all", "on") or previous == "on"):
            items.append(token)  # not the ``distinct``, ``all`` or ``distinct on (…)`` before the list
        previous = keyword
    return items, sources


def _sources(tokens: list, ctes: dict[str, Columns]):
    """(alias or name, its columns) of each table, subquery or ``WITH`` query in a ``FROM`` clause."""
    for token in tokens:
        if isinstance(token, parsed.IdentifierList):
            yield from _sources(_meaningful(token.tokens), ctes)
        elif isinstance(token, parsed.Identifier):
            yield (token.get_alias() or token.get_real_name() or "").lower(), _source_columns(token, ctes)


def _source_columns(source: parsed.Identifier, ctes: dict[str, Columns]) -> Columns:
    subquery = next((t for t in source.tokens if isinstance(t, parsed.Parenthesis)), None)
    if subquery is not None:
        return _select_columns(subquery.tokens[1:-1], ctes)
    name = (source.get_real_name() or "").lower()
    if source.get_parent_name() is None and name in ctes:
        return ctes[name]
    return frozenset({EVERY_STAGED_COLUMN}) if name == _BATCH_NAME else frozenset()


def _cte_columns(token, ctes: dict[str, Columns]) -> dict[str, Columns]:
    """Each ``WITH`` query's name and output columns (each may read the ones before it)."""
    found: dict[str, Columns] = {}
    queries = token.get_identifiers() if isinstance(token, parsed.IdentifierList) else [token]
    for query in queries:
        if isinstance(query, parsed.Identifier):
            body = next((t for t in query.tokens if isinstance(t, parsed.Parenthesis)), None)
            columns = _select_columns(body.tokens[1:-1], {**ctes, **found}) if body else frozenset()
            found[query.get_real_name().lower()] = columns
    return found


def _item_columns(item, columns_of: dict[str, Columns], every_source: Columns) -> Columns:
    """The output column(s) of one item of a select list."""
    if item.ttype is T.Wildcard:
        return every_source
    if item.ttype in T.Keyword:  # a column named like a keyword sqlparse knows (``rows``)
        return frozenset({item.value.lower()})
    if isinstance(item, parsed.Identifier) and item.is_wildcard():
        return columns_of.get((item.get_parent_name() or "").lower(), frozenset())
    if isinstance(item, parsed.Identifier) and item.get_alias() is not None:
        return frozenset({_folded(list(item.tokens[-1].flatten())[-1])})
    if isinstance(item, parsed.Identifier) and _is_column_reference(item):
        return frozenset({_folded(list(item.flatten())[-1])})
    if isinstance(item, parsed.Function | parsed.Identifier) and item.get_real_name():
        return frozenset({item.get_real_name().lower()})  # PostgreSQL names ``count(*)`` "count"
    return frozenset()  # an expression: "?column?", of no use to the loader


def _is_column_reference(item: parsed.Identifier) -> bool:
    """``name``, ``"Name"``, ``s.name``: names and dots only."""
    return all(t.ttype in (T.Name, T.String.Symbol, T.Punctuation) for t in item.flatten())


def _folded(name: parsed.Token) -> str:
    """A name as PostgreSQL holds it: unquoted folded to lower case, quoted as written."""
    if name.ttype is T.String.Symbol:
        return name.value[1:-1].replace('""', '"')
    return name.value.lower()
