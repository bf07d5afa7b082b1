"""What is not loaded, and why: a whole file (:class:`FileRejected`) or one record (:class:`Reject`).

A file rejected whole is recorded with its reason, which says what to do (:data:`FIX`); a record
rejected alone goes to ``quarantine.rejected_rows`` whole, its raw text one CSV record
(:func:`csv_record`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class FileRejected(Exception):
    """The whole file cannot be loaded; the message names the file and the reason."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path.name}: {reason}")
        self.path = path
        self.reason = reason


FIX = "correct the file (or export it again) and drop the corrected file in the folder"

"""What to do about a rejected file, said in its reason: corrected content is a new file to the loader."""


@dataclass(frozen=True)
class Reject:
    """A record that could not be parsed: it goes to quarantine (whole), not to raw."""

    source_row: int
    raw_text: str
    reason: str
    assessment_id: str | None = None  # the record's Quest.ID when it can be read


def csv_record(fields: list) -> str:
    """Fields as one CSV record, for a quarantined row's raw text (same rule as ``stage.csv_record``)."""
    return ",".join(
        '"' + v.replace('"', '""') + '"' if any(c in v for c in ',"\r\n') else v
        for v in ("" if f is None else str(f) for f in fields)
    )
