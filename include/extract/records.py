"""What the parsers yield and report: records (good or rejected), chunks of them, the reading's report."""

from __future__ import annotations

from dataclasses import dataclass, field

from include.extract.rejects import Reject

# A record as the parsers produce it: (row number, fields or None, raw text or None, reject reason).
Record = tuple[int, list | None, str | None, str | None]


@dataclass
class Chunk:
    rows: list[list]  # the 14 contract values (str or None) then the source row number
    rejects: list[Reject] = field(default_factory=list)


@dataclass
class ParseReport:
    """Filled while a file is read: what the loader records in the batch's audit message."""

    kind: str = ""
    extra_columns: list[str] = field(default_factory=list)
    rows_read: int = 0
    fast: bool = False  # staged by the loader's COPY fast path (contract_csv_body), not parsed here
    reader: str = ""  # the XLSX reader used
    sheet: str = ""  # the worksheet read, when the workbook has several
    sheets: int = 0  # worksheets in the workbook
