"""A batch's life: open, stage (the callers), publish or reject, abandon what a dead run left.

Every source (export files, case-management tables) goes through the same steps (docs/INTERNALS.md):

1. :func:`open_batch`: an ``audit.load_batches`` row, ``status = 'staging'``, committed (the batch
   id is known);
2. the caller stages the rows into :func:`stage_table` (``stage.batch_<id>``) and its rejects table
   (:func:`create_rejects_table`), committed so that GX's own connection sees them;
3. the caller validates them, and moves the rows that break a rule about a row to the rejects;
4. :func:`publish`: one transaction moves the staged batch to raw (or, when a rule about the batch
   as a whole failed, all of it to quarantine), the rejects to ``quarantine.rejected_rows``, and
   closes the batch ``loaded`` or ``quarantined``; :func:`reject_whole` closes a batch that could
   not be read at all (``rejected``).

A crash before step 4 commits leaves raw untouched: the next run, holding the same advisory lock
(:func:`loader_session`), finds the batch still ``staging`` and :func:`abandon_stale` drops its
stage tables and marks it ``abandoned``. Every batch satisfies rows read = rows loaded + rows
quarantined. :func:`summary` sums a run's batches up and raises :class:`LoadFailed` if one failed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import psycopg
from psycopg import sql

from include import db

log = logging.getLogger(__name__)


class LoadFailed(Exception):
    """Some batches were rejected or quarantined (the good ones are loaded): someone must look."""


@dataclass
class BatchResult:
    batch_id: int
    source_object: str
    status: str
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    message: str = ""
    failed_rules: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


@contextmanager
def loader_session(url: str, lock_key: str) -> Iterator[psycopg.Connection]:
    """A ``loader`` connection holding the advisory lock of one source object for its lifetime.

    The lock makes one loader at a time per object (a second one waits), and tells a run that any
    batch of that object still ``staging`` belongs to a process that died.
    """
    conn = db.connect(url, role="loader")
    try:
        conn.execute("select pg_advisory_lock(hashtext(%s))", (f"betterwork.load:{lock_key}",))
        conn.commit()
        yield conn
    finally:
        conn.close()  # ends the session, so the lock goes with it


def abandon_stale(conn: psycopg.Connection, source: str, source_object: str | None) -> list[int]:
    """Mark batches left ``staging`` by a crashed run ``abandoned`` and drop their stage tables."""
    rows = conn.execute(
        """
        select batch_id from audit.load_batches
        where status = 'staging' and source = %s and (%s::text is null or source_object = %s)
        """,
        (source, source_object, source_object),
    ).fetchall()
    for (batch_id,) in rows:
        drop_stage(conn, batch_id)
        conn.execute(
            """
            update audit.load_batches set status = 'abandoned', finished_at = clock_timestamp(),
                message = 'the run that staged this batch ended before publishing it; nothing reached raw'
            where batch_id = %s
            """,
            (batch_id,),
        )
    conn.commit()
    if rows:
        log.warning("abandoned stale batches %s", [r[0] for r in rows])
    return [r[0] for r in rows]


def stage_table(batch_id: int, suffix: str = "") -> sql.Composed:
    return sql.Identifier("stage", f"batch_{batch_id}{suffix}")


def drop_stage(conn: psycopg.Connection, batch_id: int) -> None:
    # CASCADE: a validation view over several stage tables that a crashed run left behind
    conn.execute(
        sql.SQL("drop table if exists {}, {} cascade").format(
            stage_table(batch_id), stage_table(batch_id, "_rejects")
        )
    )


def open_batch(conn: psycopg.Connection, source: str, source_object: str, **extra) -> int:
    cols = ["source", "source_object", "status", *extra]
    (batch_id,) = conn.execute(
        sql.SQL("insert into audit.load_batches ({}) values ({}) returning batch_id").format(
            sql.SQL(", ").join(map(sql.Identifier, cols)), sql.SQL(", ").join(sql.Placeholder() * len(cols))
        ),
        (source, source_object, "staging", *extra.values()),
    ).fetchone()
    conn.commit()
    return batch_id


def create_rejects_table(conn: psycopg.Connection, batch_id: int) -> None:
    conn.execute(
        sql.SQL(
            "create unlogged table {} "
            "(source_row bigint, raw_text text, reason text not null, row_version text)"
        ).format(stage_table(batch_id, "_rejects"))
    )


def reject_whole(conn: psycopg.Connection, batch_id: int, source_object: str, reason: str) -> BatchResult:
    """A file or table that cannot be read at all: recorded in audit and quarantine, nothing staged."""
    conn.rollback()
    drop_stage(conn, batch_id)
    conn.execute(
        "insert into quarantine.rejected_rows (batch_id, source, source_row, raw_text, reason) "
        "values (%s, %s, null, null, %s)",
        (batch_id, source_object, f"whole source rejected: {reason}"),
    )
    conn.execute(
        """
        update audit.load_batches set status = 'rejected', message = %s, finished_at = clock_timestamp()
        where batch_id = %s
        """,
        (reason, batch_id),
    )
    conn.commit()
    log.error("batch %s (%s) rejected: %s", batch_id, source_object, reason)
    return BatchResult(batch_id, source_object, "rejected", message=reason)


# ~50 lines, a third of them docstring: one transaction, read best as one function
def publish(
    conn: psycopg.Connection,
    *,
    batch_id: int,
    source_object: str,
    raw_table: str,
    columns: list[str],
    outcome,
    message: str,
    attach: bool = False,
    before_commit=None,
    hold: list[str] | None = None,
    assessment_column: str | None = None,
) -> BatchResult:
    """Step 4: one transaction moves the staged batch to raw (or all of it to quarantine).

    ``attach``: the stage table already has raw's shape and lineage columns; it becomes the raw
    partition ``<raw_table>_b<id>`` instead of being copied. ``hold``: the rules about the batch as
    a whole that failed (default: every failed critical rule of ``outcome``); rows quarantined one
    by one are already in the rejects table. A row version (``row_version``) already in quarantine
    for this source is counted, not copied there again. ``assessment_column`` (exports): the
    stage column whose value goes into ``quarantine.rejected_rows.assessment_id``; the rejects
    table then has an ``assessment_id`` column too. ``before_commit(conn)`` runs inside the
    transaction when the batch loads (case management: the watermark moves).
    """
    started = time.perf_counter()
    staged = conn.execute(sql.SQL("select count(*) from {}").format(stage_table(batch_id))).fetchone()[0]
    quarantined = _quarantine_rejects(conn, batch_id, source_object, assessment_column)
    read = staged + quarantined
    failed = hold if hold is not None else (outcome.failed_critical if outcome else [])
    if failed:
        reason = "critical expectations failed: " + ", ".join(failed)
        quarantined += _quarantine_staged(conn, batch_id, source_object, reason, assessment_column)
        status, loaded, message = "quarantined", 0, f"{reason}. {message}".strip()
    else:
        loaded = staged if attach else _copy_to_raw(conn, batch_id, source_object, raw_table, columns)
        if attach:
            attach_partition(conn, batch_id, raw_table)
        status = "loaded"
        if before_commit:
            before_commit(conn)
    if outcome and outcome.failed_warnings:
        message = f"{message} warnings: {warnings_text(outcome)}".strip()
    _close(conn, batch_id, status, read, loaded, quarantined, message)
    drop_stage(conn, batch_id)
    conn.commit()
    result = BatchResult(batch_id, source_object, status, read, loaded, quarantined, message, failed)
    result.seconds["publish"] = time.perf_counter() - started
    if failed:
        log.error("batch %s (%s) quarantined: %s", batch_id, source_object, ", ".join(failed))
    return result


def _quarantine_rejects(
    conn: psycopg.Connection, batch_id: int, source_object: str, assessment_column: str | None
) -> int:
    """The batch's rejects into ``quarantine.rejected_rows`` (a version already there: counted only)."""
    rejects = stage_table(batch_id, "_rejects")
    with_id = sql.SQL(", assessment_id" if assessment_column else "")
    conn.execute(
        sql.SQL(
            "insert into quarantine.rejected_rows "
            "(batch_id, source, source_row, raw_text, reason, row_version{}) "
            "select %(batch)s, %(source)s, source_row, raw_text, reason, row_version{} from {} as r "
            "where r.row_version is null or not exists (select 1 from quarantine.rejected_rows q "
            "where q.source = %(source)s and q.row_version = r.row_version)"
        ).format(with_id, with_id, rejects),
        {"batch": batch_id, "source": source_object},
    )
    return conn.execute(sql.SQL("select count(*) from {}").format(rejects)).fetchone()[0]


def _quarantine_staged(
    conn: psycopg.Connection, batch_id: int, source_object: str, reason: str, assessment_column: str | None
) -> int:
    """Every staged row of a held batch into quarantine (as JSON text), with the reason."""
    with_id = sql.SQL(", assessment_id" if assessment_column else "")
    value = sql.SQL(", s.{}").format(sql.Identifier(assessment_column)) if assessment_column else sql.SQL("")
    return conn.execute(
        sql.SQL(
            "insert into quarantine.rejected_rows (batch_id, source, source_row, raw_text, reason{}) "
            "select %(batch)s, %(source)s, s._source_row, "
            "(to_jsonb(s) - '_source_row' - '_batch_id' - '_source' - '_loaded_at')::text, "
            "%(reason)s{} from {} as s"
        ).format(with_id, value, stage_table(batch_id)),
        {"batch": batch_id, "source": source_object, "reason": reason},
    ).rowcount


def _copy_to_raw(
    conn: psycopg.Connection, batch_id: int, source_object: str, raw_table: str, columns: list[str]
) -> int:
    """The staged rows copied into raw with their lineage; returns the rows loaded."""
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))
    return conn.execute(
        sql.SQL(
            "insert into {} ({}, _batch_id, _source, _source_row) "
            "select {}, %(batch)s, %(source)s, _source_row from {}"
        ).format(sql.SQL(raw_table), cols, cols, stage_table(batch_id)),
        {"batch": batch_id, "source": source_object},
    ).rowcount


def _close(
    conn: psycopg.Connection,
    batch_id: int,
    status: str,
    read: int,
    loaded: int,
    quarantined: int,
    message: str,
) -> None:
    conn.execute(
        """
        update audit.load_batches set status = %s, rows_read = %s, rows_loaded = %s, rows_quarantined = %s,
            message = nullif(%s, ''), finished_at = clock_timestamp()
        where batch_id = %s
        """,
        (status, read, loaded, quarantined, message, batch_id),
    )


def attach_partition(conn: psycopg.Connection, batch_id: int, raw_table: str) -> None:
    """Make ``stage.batch_<id>`` the partition ``<raw_table>_b<id>`` (inside the publish transaction).

    Catalogue changes only: the stage table's ``CHECK (_batch_id = <id>)`` spares ATTACH its scan.
    The stage-only defaults go first (the sequence numbering the rows is dropped with them).
    """
    schema, table = raw_table.split(".")
    partition = f"{table}_b{batch_id}"
    stage = stage_table(batch_id)
    conn.execute(
        sql.SQL(
            "alter table {} alter column _batch_id drop default, alter column _source drop default, "
            "alter column _source_row drop default"
        ).format(stage)
    )
    conn.execute(sql.SQL("drop sequence if exists {}").format(stage_table(batch_id, "_row")))
    conn.execute(sql.SQL("alter table {} rename to {}").format(stage, sql.Identifier(partition)))
    conn.execute(
        sql.SQL("alter table {} set schema {}").format(
            sql.Identifier("stage", partition), sql.Identifier(schema)
        )
    )
    conn.execute(
        sql.SQL("alter table {} attach partition {} for values in ({})").format(
            sql.Identifier(schema, table), sql.Identifier(schema, partition), sql.Literal(batch_id)
        )
    )


def warnings_text(outcome) -> str:
    """The failed warnings with how many rows and a few of them (keys), for the batch's message."""
    parts = []
    for c in outcome.checks:
        if c.severity != "warning" or c.success:
            continue
        examples = json.dumps(c.unexpected_values[:3], default=str)
        parts.append(f"{c.expectation} ({c.unexpected_count} rows, e.g. {examples[:300]})")
    return "; ".join(parts)


def summary(results: list[BatchResult], **extra) -> dict:
    """A small JSON-able dict for task logs and XCom; raises LoadFailed if any batch failed."""
    bad = [r for r in results if r.status in ("rejected", "quarantined")]
    seconds: dict[str, float] = {}
    for r in results:
        for step, value in r.seconds.items():
            seconds[step] = round(seconds.get(step, 0.0) + value, 3)
    summary = {
        **extra,
        "seconds": seconds,
        "batches": len(results),
        "rows_loaded": sum(r.rows_loaded for r in results),
        "rows_quarantined": sum(r.rows_quarantined for r in results),
        "results": [{k: v for k, v in asdict(r).items() if k != "seconds"} for r in results],
    }
    if bad:
        lines = [
            f"batch {r.batch_id} ({r.source_object}) {r.status}: "
            + (", ".join(r.failed_rules) if r.failed_rules else r.message)
            for r in bad
        ]
        raise LoadFailed(f"{len(bad)} of {len(results)} batches not loaded:\n" + "\n".join(lines))
    return summary


# A partitioned table's own statistics (the whole table's, which the planner uses when a query reads
# every partition) are renewed once its row count has moved by more than this fraction since they
# were taken; new partitions are analysed on their own. ANALYZE of the parent re-reads a sample of
# every partition (PostgreSQL 15 has no ANALYZE ONLY), so renewing it at each load would cost each
# hourly load the size of the whole table; renewing it geometrically keeps the cost linear in what
# was loaded, and estimates within a fifth of the truth.
PARENT_STATISTICS_DRIFT = 0.2


def analyze(url: str, tables: list[str]) -> None:
    """Fresh planner statistics for raw tables a run changed, before dbt reads them (issue 13).

    Run as the pipeline's login (the tables' owner; ``loader`` may not own them), after the publish
    has committed. A plain table is analysed whole (ANALYZE reads a bounded sample); a partitioned
    one as :func:`_analyze_partitioned` says.
    """
    if not tables:
        return
    started = time.perf_counter()
    done = []
    with db.connect(url, autocommit=True) as conn:
        for table in dict.fromkeys(tables):
            schema, name = table.split(".")
            oid, kind = conn.execute(
                "select oid, relkind from pg_class"
                " where oid = format('%%I.%%I', %s::text, %s::text)::regclass",
                (schema, name),
            ).fetchone()
            if kind == "p":
                done += _analyze_partitioned(conn, schema, name, oid)
            else:
                conn.execute(sql.SQL("analyze {}").format(sql.Identifier(schema, name)))
                done.append(table)
    log.info("analysed %s in %.2f s", ", ".join(done) or "nothing", time.perf_counter() - started)


def _analyze_partitioned(conn: psycopg.Connection, schema: str, parent: str, oid: int) -> list[str]:
    """The whole table if its own statistics are missing; else the partitions that have rows and no
    statistics yet, then the whole table again if its row count has drifted by more than
    :data:`PARENT_STATISTICS_DRIFT` since its statistics were taken."""
    whole = sql.SQL("analyze {}").format(sql.Identifier(schema, parent))

    def rows() -> tuple[float, float]:
        """(rows the whole table's last ANALYZE found, -1 if never; rows its partitions' found)."""
        return conn.execute(
            "select p.reltuples, (select coalesce(sum(greatest(c.reltuples, 0)), 0) from pg_inherits i"
            " join pg_class c on c.oid = i.inhrelid where i.inhparent = p.oid)"
            " from pg_class p where p.oid = %s",
            (oid,),
        ).fetchone()

    if rows()[0] < 0:  # never analysed: one pass covers every partition
        conn.execute(whole)
        return [f"{schema}.{parent} (whole table)"]
    fresh = conn.execute(
        """
        select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid
        where i.inhparent = %s
          and not exists (select from pg_stats s where s.schemaname = %s and s.tablename = c.relname)
          and c.reltuples <> 0  -- an empty partition (the default one) has no statistics to take
        order by c.relname
        """,
        (oid, schema),
    ).fetchall()
    for (partition,) in fresh:
        conn.execute(sql.SQL("analyze {}").format(sql.Identifier(schema, partition)))
    done = [f"{schema}.{partition} (new partition)" for (partition,) in fresh]
    own, now = rows()
    if abs(now - own) > PARENT_STATISTICS_DRIFT * max(own, 1):
        conn.execute(whole)
        done.append(f"{schema}.{parent} (whole table)")
    return done


@dataclass
class Quarantined:
    """Rows a batch quarantined alone: how many per reason, and a few of their keys."""

    count: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    keys: list[dict] = field(default_factory=list)

    def __add__(self, other: Quarantined) -> Quarantined:
        reasons = dict(self.reasons)
        for reason, n in other.reasons.items():
            reasons[reason] = reasons.get(reason, 0) + n
        return Quarantined(self.count + other.count, reasons, self.keys + other.keys)

    def summary(self) -> str:
        return "; ".join(f"{reason}: {n}" for reason, n in self.reasons.items())


def rule_reason(rule: str) -> str:
    return f"critical expectation failed: {rule}"


def broken_rules_sql(rules: list) -> sql.Composable:
    """SQL array of the reasons of ``rules`` ((reason, condition)) that a row breaks."""
    return sql.SQL("array_remove(array[{}]::text[], null)").format(
        sql.SQL(", ").join(
            sql.SQL("case when {} then {} end").format(cond, sql.Literal(reason)) for reason, cond in rules
        )
    )


def reasons_sql(rules: list) -> sql.Composable:
    """SQL naming every rule of ``rules`` ((reason, condition)) that a row breaks, joined by '; '."""
    return sql.SQL("array_to_string({}, '; ')").format(broken_rules_sql(rules))
