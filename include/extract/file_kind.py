"""A file's kind from its content and name: ``'csv'`` or ``'xlsx'``, or rejected saying what it is."""

from __future__ import annotations

import codecs
import re
from pathlib import Path

from include.extract.rejects import FIX, FileRejected

SUFFIXES = (".csv", ".xlsx")

_BINARY_MAGIC = {
    b"%PDF": "a PDF document",
    b"\xd0\xcf\x11\xe0": "a legacy Office (XLS/DOC) file",
    b"\x1f\x8b": "a gzip archive",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
}

_ZIP_MAGIC = b"PK\x03\x04"

_MARKUP = re.compile(rb"\s*<(!doctype html|html|\?xml|table|head|body)[\s>]", re.IGNORECASE)


def sniff(path: Path, head: bytes | None = None) -> str:
    """``'csv'`` or ``'xlsx'`` from the file's content and name; raises :class:`FileRejected`.

    ``head``: the file's first 64 KiB, if already read. A workbook saved under a ``.csv`` name is
    read as the workbook it is (and said in the batch's message).
    """
    if head is None:
        with path.open("rb") as f:
            head = f.read(1 << 16)
    if not head or not head.lstrip(codecs.BOM_UTF8 + b" \t\r\n"):
        raise FileRejected(path, "empty file (no header, no rows); " + FIX)
    for magic, what in _BINARY_MAGIC.items():
        if head.startswith(magic):
            raise FileRejected(path, f"not a CSV or XLSX export: the content is {what}; " + FIX)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise FileRejected(
            path,
            f"unsupported file type {suffix or '(none)'}: expected .csv or .xlsx; save the export as one "
            "of them, or move the file out of the folder",
        )
    if head.startswith(_ZIP_MAGIC):
        return "xlsx"
    if suffix == ".xlsx":
        raise FileRejected(path, "not a valid XLSX file (not a zip archive); " + FIX)
    utf16 = head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    if b"\0" in head and not utf16:
        raise FileRejected(path, "not a CSV export: binary content (NUL bytes); " + FIX)
    if _MARKUP.match(head.removeprefix(codecs.BOM_UTF8)):
        raise FileRejected(
            path,
            "not a CSV export: the content is an HTML or XML document (a web page or an Excel 'XML "
            "spreadsheet' saved under a .csv name?); save the export as CSV UTF-8 or XLSX and drop the "
            "new file in the folder",
        )
    return "csv"
