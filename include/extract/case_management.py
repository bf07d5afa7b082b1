"""Incremental extraction of the case-management tables (docs/SOURCES.md) into a stage table.

Each table is read on its *change time*: ``updated_at``, or ``greatest(updated_at, deleted_at)``
where the table has ``deleted_at`` (so a soft deletion that forgot to touch ``updated_at`` still
arrives). The watermark is the greatest change time loaded, kept in ``audit.watermarks`` and moved
only by the transaction that publishes the batch (:mod:`include.load`).

Rows committed late, i.e. stamped with a change time older than a watermark that was already
taken, are caught by re-reading a look-back window (``EXTRACT_LOOKBACK_MINUTES``, default 10)
below the watermark; row versions that raw already holds (same key and same content, change time
included) are dropped from the stage table, so nothing is loaded twice. Rows whose change time is
null are re-read every time and loaded only when their content changed. ``courses`` has no
``updated_at``: it is read whole each time and only rows that differ from their latest raw version
are loaded.

Rows move from the source to the stage table as PostgreSQL's own ``COPY`` text stream, block by
block: memory stays bounded and no value is re-encoded in Python.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from include import contract, db
from include.config import settings

TableSpec = contract.TableSpec  # a source table's columns, key, change and personal columns

FUTURE_RULE = "change time not in the future"
"""The loader's critical row rule: ``updated_at``/``deleted_at`` after the source's own ``now()``."""
DRIFT_RULE = "no source columns beyond the contract"
"""The loader's warning: the source table has columns the contract does not know (not loaded)."""


class SourceRejected(Exception):
    """The source table cannot be extracted as the contract says (missing, or lacking columns)."""


_TABLES = contract.CASE_MANAGEMENT  # table name -> its spec, in extraction order


def spec(table: str) -> TableSpec:
    """The contract's columns and key of one case-management table (same order as its raw table)."""
    if table not in _TABLES:
        raise ValueError(f"unknown case-management table {table!r}; known: {', '.join(_TABLES)}")
    return _TABLES[table]


@dataclass
class Extracted:
    rows: int  # new row versions staged
    skipped: int  # versions re-read in the look-back window that raw already holds
    watermark_to: dt.datetime | None
    source_now: dt.datetime | None = None  # the source's now(), read in the extract's snapshot
    unknown_columns: list[str] = field(default_factory=list)  # source columns the contract lacks


def current_watermark(conn: psycopg.Connection, table: TableSpec) -> dt.datetime | None:
    row = conn.execute(
        "select watermark from audit.watermarks where source_object = %s", (table.source_object,)
    ).fetchone()
    return row[0] if row else None


def window_start(watermark: dt.datetime | None) -> dt.datetime | None:
    """Exclusive lower bound of the next extract: the watermark minus the look-back window."""
    if watermark is None:
        return None
    return watermark - dt.timedelta(minutes=settings().extract_lookback_minutes)


def move_watermark(
    conn: psycopg.Connection, table: TableSpec, watermark: dt.datetime | None, batch_id: int
) -> None:
    """Store the new watermark (inside the publishing transaction; never moves backwards)."""
    if watermark is None:
        return
    conn.execute(
        """
        insert into audit.watermarks (source_object, watermark, batch_id) values (%s, %s, %s)
        on conflict (source_object) do update
            set watermark = greatest(audit.watermarks.watermark, excluded.watermark),
                batch_id = excluded.batch_id, moved_at = now()
        """,
        (table.source_object, watermark, batch_id),
    )


def _change_expr(table: TableSpec, alias: str = "") -> sql.Composable | None:
    cols = [sql.Identifier(*([alias] if alias else []), c) for c in table.change_columns]
    if not cols:
        return None
    return cols[0] if len(cols) == 1 else sql.SQL("greatest({})").format(sql.SQL(", ").join(cols))


def _check_source(ops: psycopg.Connection, table: TableSpec) -> list[str]:
    """The source's columns the contract does not know (loaded without them, with a warning).

    Raises :class:`SourceRejected` naming the table and each contract column it lacks (dropped or
    renamed at the source): that table is not loaded; the other tables are not affected.
    """
    present = [
        r[0]
        for r in ops.execute(
            "select column_name from information_schema.columns"
            " where table_schema = 'public' and table_name = %s order by ordinal_position",
            (table.table,),
        )
    ]
    if not present:
        raise SourceRejected(f"{table.source_object}: table not found in the case-management database")
    missing = [c for c in table.columns if c not in present]
    unknown = [c for c in present if c not in table.columns]
    if missing:
        hint = f" (columns the contract does not know: {', '.join(unknown)}; renamed?)" if unknown else ""
        raise SourceRejected(
            f"{table.source_object}: lacks contract columns {', '.join(missing)}{hint}; "
            f"table {table.table} was not loaded (dropped or renamed at the source: fix the source "
            "or the contract)"
        )
    return unknown


def stage(
    conn: psycopg.Connection, ops_url: str, table: TableSpec, batch_id: int, window_from: dt.datetime | None
) -> Extracted:
    """Copy the changed rows into ``stage.batch_<id>`` (not committed).

    Reads the source's own ``now()`` in the same repeatable-read snapshot as the rows: a change time
    after it is in the future (a mistyped date, or a source clock ahead); such rows are the loader's
    rule :func:`future_rows` and never move the watermark. The watermark is computed by the caller
    once those rows are out (:func:`watermark_after`).
    """
    stage_table = sql.Identifier("stage", f"batch_{batch_id}")
    cols = sql.SQL(", ").join(map(sql.Identifier, table.columns))
    change = _change_expr(table)
    order = sql.SQL(", ").join([*([change] if change else []), *map(sql.Identifier, table.key)])
    where = sql.SQL("")
    if change is not None and window_from is not None:
        where = sql.SQL(" where {change} is null or {change} > {since}").format(
            change=change, since=sql.Literal(window_from)
        )
    query = sql.SQL("copy (select row_number() over (order by {}), {} from {}{}) to stdout").format(
        order, cols, sql.Identifier("public", table.table), where
    )
    conn.execute(
        sql.SQL(
            "create unlogged table {} as select 0::bigint as _source_row, {} from {} with no data"
        ).format(stage_table, cols, sql.SQL(table.raw_table))
    )
    with db.connect(ops_url) as ops:
        unknown = _check_source(ops, table)
        ops.commit()
        # One read-only snapshot for the whole extract, and the source's clock read in it.
        ops.execute("set transaction isolation level repeatable read, read only")
        (source_now,) = ops.execute("select now()").fetchone()
        with (
            ops.cursor().copy(query) as out,
            conn.cursor().copy(
                sql.SQL("copy {} (_source_row, {}) from stdin").format(stage_table, cols)
            ) as into,
        ):
            for block in out:
                into.write(block)
    return Extracted(0, 0, None, source_now=source_now, unknown_columns=unknown)


def future_rows(table: TableSpec, source_now: dt.datetime) -> list[tuple[str, sql.Composable]]:
    """The loader's row rules on change times: (reason, condition over a staged row) per column."""
    return [
        (
            f"{FUTURE_RULE}: {column} after the source's now() ({source_now.isoformat()})",
            sql.SQL("{} > {}").format(sql.Identifier(column), sql.Literal(source_now)),
        )
        for column in table.change_columns
    ]


def watermark_after(
    conn: psycopg.Connection, table: TableSpec, batch_id: int, window_from: dt.datetime | None, source_now
) -> dt.datetime | None:
    """The greatest change time staged, never below the old watermark nor beyond the source's now()."""
    change = _change_expr(table)
    if change is None:
        return None
    stage_table = sql.Identifier("stage", f"batch_{batch_id}")
    watermark_to = conn.execute(sql.SQL("select max({}) from {}").format(change, stage_table)).fetchone()[0]
    if window_from is not None:
        # The window re-reads below the old watermark: never report less than it.
        previous = window_from + dt.timedelta(minutes=settings().extract_lookback_minutes)
        watermark_to = max(watermark_to, previous) if watermark_to else previous
    if watermark_to is not None and source_now is not None:
        watermark_to = min(watermark_to, source_now)
    return watermark_to


def drop_known(
    conn: psycopg.Connection, table: TableSpec, batch_id: int, version_salt: str
) -> tuple[int, int]:
    """Drop staged versions raw already holds, then those already quarantined row by row.

    Returns (already loaded, already quarantined). A version quarantined alone (in a batch that
    loaded: the watermark went past it) is never quarantined again when the look-back window
    re-reads it; a corrected version (a later change time, or any changed value) is new and loads.
    """
    stage_table = sql.Identifier("stage", f"batch_{batch_id}")
    loaded = _drop_known_versions(conn, table, stage_table)
    quarantined = conn.execute(
        sql.SQL(
            "delete from {stage} as s where exists (select 1 from quarantine.rejected_rows q "
            "join audit.load_batches b using (batch_id) where q.source = {source} "
            "and b.status = 'loaded' and q.row_version = {version} and q.reason not like {future})"
        ).format(
            stage=stage_table,
            source=sql.Literal(table.source_object),
            future=sql.Literal(FUTURE_RULE + "%"),
            version=row_version(table, "s", version_salt),
        )
    ).rowcount
    return loaded, quarantined


def row_version(table: TableSpec, alias: str, salt: str) -> sql.Composable:
    """A keyed fingerprint of a staged row's content (every contract column, not the lineage).

    Kept with a quarantined row, so that the same version is recognised when it is read again,
    without keeping personal values: ``salt`` is secret (derived from the pseudonym key).
    """
    record = sql.SQL("jsonb_build_array({})").format(
        sql.SQL(", ").join(sql.Identifier(alias, c) for c in table.columns)
    )
    return sql.SQL("encode(sha256(convert_to({} || {}::text, 'UTF8')), 'hex')").format(
        sql.Literal(salt), record
    )


def _drop_known_versions(conn: psycopg.Connection, table: TableSpec, stage_table: sql.Identifier) -> int:
    """Delete staged rows whose exact version (key and every column) raw already holds."""
    key_match = sql.SQL(" and ").join(sql.SQL("r.{c} = s.{c}").format(c=sql.Identifier(c)) for c in table.key)
    same = sql.SQL("({}) is not distinct from ({})").format(
        sql.SQL(", ").join(sql.Identifier("r", c) for c in table.columns),
        sql.SQL(", ").join(sql.Identifier("s", c) for c in table.columns),
    )
    keys = sql.SQL(", ").join(map(sql.Identifier, table.key))
    if table.change_columns:
        known = sql.SQL(table.raw_table)
    else:
        # No change time: compare with the latest version only (a value may change back).
        known = sql.SQL(
            "(select distinct on ({keys}) * from {raw} order by {keys}, _batch_id desc, _source_row desc)"
        ).format(keys=keys, raw=sql.SQL(table.raw_table))
    return conn.execute(
        sql.SQL("delete from {} as s where exists (select 1 from {} as r where {} and {})").format(
            stage_table, known, key_match, same
        )
    ).rowcount
