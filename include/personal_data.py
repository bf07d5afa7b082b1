"""Personal data: which source columns hold it, and how such a value is masked outside ``raw``.

``raw`` is the only place where a name, a national id (CNIC) or a phone number may be stored.
Anything written elsewhere about a source row (``quarantine``, ``audit``, the GX store, logs) goes
through :func:`mask_record`, which replaces each personal value by a keyed hash: the same value
always gives the same mask (so a quarantined row can still be matched to its source), but the mask
cannot be reversed without the pseudonym key.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

PERSONAL_COLUMNS: dict[str, tuple[str, ...]] = {
    "cm_training_participants": ("full_name", "cnic", "phone"),
    "survey_worker_rows": ("respondent/name", "respondent/phone"),
}
"""Source entity (raw table name without schema) -> its personal columns."""

MASK_PREFIX = "masked:"


def mask(value: str | None, key: bytes) -> str | None:
    """A keyed, irreversible stand-in for a personal value (``None`` and ``''`` stay as they are)."""
    if value is None or value == "":
        return value
    digest = hmac.new(key, b"personal:" + str(value).encode(), hashlib.sha256).hexdigest()
    return MASK_PREFIX + digest[:16]


def mask_record(entity: str, record: Mapping[str, object], key: bytes) -> dict[str, object]:
    """``record`` with every personal column of ``entity`` masked; other columns unchanged."""
    personal = PERSONAL_COLUMNS.get(entity, ())
    return {
        column: mask(None if value is None else str(value), key) if column in personal else value
        for column, value in record.items()
    }
