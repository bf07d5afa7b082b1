"""What one export file may cost (``include.config``: ``EXPORT_MAX_*``), and the words for a breach."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from include.extract.rejects import FileRejected


@dataclass(frozen=True)
class Limits:
    """What one export file may cost (``include.config``: ``EXPORT_MAX_*``)."""

    max_bytes: int = 2 << 30
    max_rows: int = 10_000_000
    max_columns: int = 200
    max_xlsx_uncompressed_bytes: int = 2 << 30
    xlsx_fast_max_bytes: int = 512 << 20  # a larger sheet is streamed by openpyxl: bounded memory
    xlsx_child_min_bytes: int = 32 << 20  # a larger sheet is read in a child process (xlsx_child)

    @classmethod
    def from_settings(cls) -> Limits:
        from include.config import settings

        cfg = settings()
        return cls(
            cfg.export_max_bytes,
            cfg.export_max_rows,
            cfg.export_max_columns,
            cfg.export_max_xlsx_uncompressed_bytes,
            cfg.xlsx_fast_max_bytes,
            cfg.xlsx_child_min_bytes,
        )


def too_many_rows(path: Path, limits: Limits) -> FileRejected:
    return FileRejected(
        path,
        f"more than {limits.max_rows:,} records (EXPORT_MAX_ROWS); split the export into smaller files, "
        "or raise the limit",
    )


def mib(n: int) -> str:
    return f"{n / (1 << 20):,.1f} MiB"
