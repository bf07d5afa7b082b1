"""The loader's fast path for a CSV: its bytes straight to PostgreSQL's ``COPY``, when they may go.

:func:`contract_csv_body` gives the bytes after the header when the header is exactly the
contract's columns; :class:`NotFastPath` says the bytes cannot go to ``COPY`` as they are, and the
loader parses the file row by row instead (:func:`include.extract.chunks.iter_chunks`).
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from pathlib import Path

from include.extract.columns import CONTRACT_COLUMNS


class NotFastPath(Exception):
    """The file's bytes cannot go to ``COPY`` as they are; the loader parses it row by row instead."""


def contract_csv_body(path: Path, block_size: int = 1 << 20) -> Iterator[bytes] | None:
    """The bytes after the header, in blocks, if the header is exactly the contract's columns.

    This is the loader's fast path: PostgreSQL's ``COPY … (FORMAT csv)`` parses such a file faster
    than Python can, and refuses (so that the loader falls back to :func:`iter_chunks`) whatever the
    row-by-row parser would quarantine or reject: a wrong field count, bytes that are not UTF-8, an
    open quote at the end. ``None``: another header (other order, extra or missing columns, not
    UTF-8); parse row by row. The generator raises :class:`NotFastPath` on a line starting with
    ``\\.``, which ``COPY`` would take for the end of the data.
    """
    f = path.open("rb")
    line = f.readline()
    try:
        names = next(csv.reader([line.removeprefix(codecs.BOM_UTF8).decode("utf-8")]), [])
    except (UnicodeDecodeError, csv.Error):
        names = []
    if [n.strip() for n in names] != list(CONTRACT_COLUMNS) or not line.endswith(b"\n"):
        f.close()
        return None
    return _blocks(f, block_size)


def _blocks(f, block_size: int) -> Iterator[bytes]:
    with f:
        tail = b"\n"  # the header's line end: the first data line is a line start too
        while block := f.read(block_size):
            if b"\n\\." in tail + block[:2] or b"\n\\." in block:
                raise NotFastPath("a line starts with \\. (COPY's end-of-data marker)")
            tail = block[-2:]
            yield block
