"""Case-management batches between extraction and publish: rows quarantined alone, new columns, retention.

Beside :mod:`include.load.stage_exports`. :mod:`include.extract.case_management` streams a
table's changed rows into ``stage.batch_<id>``; :func:`quarantine_rows` moves the staged rows that
break a rule about a row (a change time in the future, a failed critical GX row rule) to the
batch's rejects, masked and fingerprinted (``row_version``) so that the same version is never
quarantined twice.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging

import psycopg
from psycopg import sql

from include import db
from include.extract import case_management as extract_ops
from include.load import batches

log = logging.getLogger(__name__)

CM_SOURCE = "case_management"


def new_columns(conn: psycopg.Connection, source_object: str, unknown: list[str]) -> list[str]:
    """The source's columns beyond the contract that no earlier batch of this table reported."""
    if not unknown:
        return []
    reported = conn.execute(
        "select coalesce(jsonb_agg(distinct c), '[]') from audit.validation_results v "
        "join audit.load_batches b using (batch_id), jsonb_array_elements_text(v.unexpected_values) as c "
        "where b.source_object = %s and v.suite = 'loader' and v.expectation = %s",
        (source_object, extract_ops.DRIFT_RULE),
    ).fetchone()[0]
    conn.commit()
    return [c for c in unknown if c not in reported]


def version_salt() -> str:
    """The secret mixed into quarantined rows' fingerprints (derived from the pseudonym key)."""
    from include import warehouse
    from include.config import settings

    key = warehouse.pseudonym_key(settings())
    return hmac.new(key, b"quarantine row version", hashlib.sha256).hexdigest()


def quarantine_rows(
    conn: psycopg.Connection, batch_id: int, spec: extract_ops.TableSpec, rules: list, salt: str
) -> batches.Quarantined:
    """Move the staged rows that break any of ``rules`` ((reason, SQL condition)) to the rejects.

    A row's reason names every rule it breaks. Its raw text is the row as JSON, personal values
    masked (``include.personal_data.mask_record``); its ``row_version`` a keyed fingerprint of the
    whole row (:func:`include.extract.case_management.row_version`). Not committed.
    """
    if not rules:
        return batches.Quarantined()
    from include import personal_data, warehouse
    from include.config import settings

    stage = batches.stage_table(batch_id)
    reasons = batches.reasons_sql(rules)
    broken = sql.SQL(" or ").join(sql.SQL("({})").format(cond) for _, cond in rules)
    rows = conn.execute(
        sql.SQL(
            "delete from {stage} as s where {broken} "
            "returning s._source_row, to_jsonb(s) - '_source_row', {reasons}, {version}"
        ).format(
            stage=stage, broken=broken, reasons=reasons, version=extract_ops.row_version(spec, "s", salt)
        )
    ).fetchall()
    if not rows:
        return batches.Quarantined()
    key = warehouse.pseudonym_key(settings())
    done = batches.Quarantined(count=len(rows))
    with conn.cursor().copy(
        sql.SQL("copy {} (source_row, raw_text, reason, row_version) from stdin").format(
            batches.stage_table(batch_id, "_rejects")
        )
    ) as copy:
        for source_row, record, reason, version in sorted(rows, key=lambda r: r[0]):
            masked = personal_data.mask_record(spec.entity, record, key)
            copy.write_row((source_row, json.dumps(masked, ensure_ascii=False), reason, version))
            done.reasons[reason] = done.reasons.get(reason, 0) + 1
            if len(done.keys) < 5:
                done.keys.append({"_source_row": source_row, **{k: record.get(k) for k in spec.key}})
    return done


def purge_quarantine(url: str) -> int:
    """Delete quarantined rows of personal tables older than ``QUARANTINE_RETENTION_DAYS``."""
    from include import personal_data
    from include.config import settings

    sources = [
        f"public.{e.removeprefix('cm_')}" for e in personal_data.PERSONAL_COLUMNS if e.startswith("cm_")
    ]
    with db.connect(url) as conn:
        purged = conn.execute(
            "delete from quarantine.rejected_rows where source = any(%s) "
            "and rejected_at < now() - make_interval(days => %s)",
            (sources, settings().quarantine_retention_days),
        ).rowcount
    if purged:
        log.info("purged %s quarantined rows of personal tables (retention)", purged)
    return purged
