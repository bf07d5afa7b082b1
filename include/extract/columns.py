"""Which columns a file source keeps and requires, and where a file's header has them.

The assessment export's columns (:data:`CONTRACT_COLUMNS`, docs/SOURCES.md) are the default
(:data:`EXPORT_SPEC`); a survey instrument passes its own :class:`ColumnSpec`. A header that lacks
a required column, repeats one or has too many is rejected, saying why (:func:`header_positions`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from include.contract import EXPORT_COLUMNS
from include.extract.limits import Limits
from include.extract.records import ParseReport
from include.extract.rejects import FIX, FileRejected

CONTRACT_COLUMNS = EXPORT_COLUMNS  # the 14 export columns (docs/SOURCES.md), in order

"""The export's columns, spelled as the global system spells them (docs/SOURCES.md)."""

DATE_COLUMN = "Assesment.Start.Date"


@dataclass(frozen=True)
class ColumnSpec:
    """Which columns a file source keeps (in this order) and which its header must have.

    The default is the assessment export's (docs/SOURCES.md). Another file source (the survey
    instruments, include/extract/surveys.py) passes its own to :func:`iter_chunks`: a column of
    ``columns`` missing from ``required`` may be absent from a file (its values are then None).
    """

    columns: tuple[str, ...]
    required: tuple[str, ...]
    what: str = "assessment export"


EXPORT_SPEC = ColumnSpec(tuple(CONTRACT_COLUMNS), tuple(CONTRACT_COLUMNS))


def header_positions(
    path: Path, header: list, report: ParseReport, limits: Limits, spec: ColumnSpec = EXPORT_SPEC
) -> list[int]:
    if len(header) > limits.max_columns:
        raise FileRejected(
            path,
            f"the header has {len(header):,} columns, more than an export may have ({limits.max_columns}, "
            "EXPORT_MAX_COLUMNS); " + FIX,
        )
    names = [(h or "").strip() if isinstance(h, str) else ("" if h is None else str(h)) for h in header]
    if spec is not EXPORT_SPEC:
        return _spec_positions(path, names, report, spec)
    missing = [c for c in CONTRACT_COLUMNS if c not in names]
    if missing:
        joined = ",".join(names)
        for sep, what in ((";", "semicolons"), ("\t", "tabs"), ("|", "vertical bars")):
            if sep in joined and sum(c in joined for c in CONTRACT_COLUMNS) > len(CONTRACT_COLUMNS) // 2:
                raise FileRejected(
                    path,
                    f"the columns are separated by {what}, not commas (a regional Excel setting?); save "
                    "it as CSV (comma delimited) and drop the new file in the folder",
                )
        if not any(c in names for c in CONTRACT_COLUMNS):
            raise FileRejected(
                path,
                "not an assessment export: the first row has none of the contract columns "
                f"({', '.join(CONTRACT_COLUMNS[:3])}, …); export it again from the assessment system",
            )
        raise FileRejected(
            path,
            f"header lacks contract columns: {', '.join(missing)} (spelled exactly as the assessment "
            "system spells them); " + FIX,
        )
    duplicated = sorted({c for c in CONTRACT_COLUMNS if names.count(c) > 1})
    if duplicated:
        raise FileRejected(
            path,
            f"header repeats contract columns: {', '.join(duplicated)} (which one holds the data?); " + FIX,
        )
    report.extra_columns = [n for n in names if n and n not in CONTRACT_COLUMNS]
    return [names.index(c) for c in CONTRACT_COLUMNS]


def _spec_positions(path: Path, names: list[str], report: ParseReport, spec: ColumnSpec) -> list[int]:
    """Header positions of ``spec.columns`` (-1: an optional column the file lacks)."""
    missing = [c for c in spec.required if c not in names]
    if missing:
        raise FileRejected(
            path,
            f"header lacks required columns of a {spec.what}: {', '.join(missing)}; nothing of the file "
            "was loaded; " + FIX,
        )
    duplicated = sorted({c for c in spec.columns if names.count(c) > 1})
    if duplicated:
        raise FileRejected(
            path, f"header repeats columns: {', '.join(duplicated)} (which one holds the data?); " + FIX
        )
    report.extra_columns = [n for n in names if n and n not in spec.columns]
    return [names.index(c) if c in names else -1 for c in spec.columns]
