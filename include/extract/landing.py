"""The landing protocol: which files of a landing folder are complete, each read once.

Nothing here touches the database. :func:`ready_files` lists the files of the landing folder that
are complete (see the landing protocol in docs/LOADING.md); :func:`land` reads one such file
**once**: into a private temporary copy, computing its sha256 from the same bytes, telling a
file's kind (:mod:`include.extract.file_kind`) and a CSV's text encoding, converted to UTF-8
(:mod:`include.extract.encoding`), and enforcing the cost limits (:class:`~include.extract.limits.Limits`).
Everything after it reads the copy, so the rows loaded are exactly the bytes hashed.
"""

from __future__ import annotations

import codecs
import datetime as dt
import hashlib
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from include.extract.encoding import settle_encoding
from include.extract.file_kind import sniff
from include.extract.limits import Limits, mib
from include.extract.rejects import FileRejected


class NotReady(Exception):
    """The file is still being written (or went away) while it was read: taken on a later run."""


@dataclass
class Landed:
    """A file read once by :func:`land`: its checksum, and a private copy that the loader parses."""

    path: Path  # the file in the landing folder (its name goes into lineage and messages)
    copy: Path | None  # CSV: the content as UTF-8; XLSX: the workbook's bytes; None if rejected
    checksum: str  # sha256 of the file's bytes as landed (the same bytes the copy was made from)
    size: int
    kind: str = ""  # 'csv' or 'xlsx'
    encoding: str | None = None  # a CSV's text encoding as found
    lines: int = 0  # line breaks in the (UTF-8) copy of a CSV: records can be checked against it
    exported_on: dt.date | None = None
    rejected: str | None = None  # why the file is rejected whole (its checksum is known all the same)

    def discard(self) -> None:
        if self.copy is not None:
            self.copy.unlink(missing_ok=True)


def checksum(path: Path) -> str:
    """sha256 of the file's content (read in blocks): a file is known by it, whatever its name."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


PARTIAL_SUFFIXES = (".part", ".tmp", ".crdownload")

_NAME_DATE = re.compile(r"(?<![0-9])([0-9]{4})-([0-9]{2})-([0-9]{2})(?![0-9])")


def candidate_files(folder: Path) -> list[Path]:
    """Export files in the landing folder, in export order (export date, then modification time, name).

    Hidden files and office lock files (``.x``, ``~$x``) and partial downloads (``.part``,
    ``.tmp``, ``.crdownload``: the write-then-rename convention) are not exports yet. Every other
    file is a candidate: one with the wrong type is rejected with a message rather than silently
    ignored.
    """
    if not folder.is_dir():
        return []
    files = []
    for p in folder.iterdir():
        if p.name.startswith((".", "~")) or p.name.lower().endswith(PARTIAL_SUFFIXES):
            continue
        try:
            if p.is_file():
                files.append((exported_on(p), p.stat().st_mtime, p.name, p))
        except OSError:
            continue  # gone meanwhile
    return [f[-1] for f in sorted(files)]


def exported_on(path: Path) -> dt.date:
    """The export's date: the first valid ``YYYY-MM-DD`` in the file name, else its modification date.

    ``bwpk_assessments_2025-12-22_corrections.csv`` → 2025-12-22. It decides which export of an
    assessment wins downstream, whatever the order in which files were loaded.
    """
    for match in _NAME_DATE.finditer(path.name):
        try:
            return dt.date(*(int(g) for g in match.groups()))
        except ValueError:
            continue
    return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).date()


def ready_files(
    folder: Path, min_age_seconds: float = 60.0, settle_seconds: float = 2.0
) -> tuple[list[Path], list[Path]]:
    """(complete files, files still being written) among :func:`candidate_files`.

    A file modified more than ``min_age_seconds`` ago is complete. A younger one is taken only if
    its size and modification time are the same after ``settle_seconds`` (one wait for all of
    them); :func:`land` checks once more that nothing changed while it read the file.
    """
    files = candidate_files(folder)
    now = time.time()
    young = {}
    for p in files:
        try:
            st = p.stat()
        except OSError:
            continue
        if now - st.st_mtime < min_age_seconds:
            young[p] = (st.st_size, st.st_mtime_ns)
    waiting: list[Path] = []
    if young and settle_seconds > 0:
        time.sleep(settle_seconds)
    for p, before in young.items():
        try:
            st = p.stat()
            if (st.st_size, st.st_mtime_ns) != before:
                waiting.append(p)
        except OSError:
            waiting.append(p)
    return [p for p in files if p not in waiting and p.exists()], waiting


def land(path: Path, workdir: Path, limits: Limits | None = None) -> Landed:
    """Read the file once: sha256, a private copy to parse (UTF-8 for a CSV), checks and limits.

    Raises :class:`NotReady` if the file changed or went away while it was read. A file that cannot
    be loaded comes back with ``rejected`` set (and its checksum, so that the same bytes are not
    examined again on every run).
    """
    limits = limits or Limits()
    try:
        before = path.stat()
        f = path.open("rb")
    except FileNotFoundError as err:
        raise NotReady(f"{path.name}: gone before it was read") from err
    fd, name = _temp(workdir, path)
    copy = Path(name)
    scan = _Scan(limits.max_bytes)
    with f, os.fdopen(fd, "wb") as out:
        while block := f.read(1 << 20):
            scan.feed(block, out)
        scan.end()
    _check_unchanged(path, copy, before, scan.size)
    landed = Landed(path, copy, scan.digest.hexdigest(), scan.size, exported_on=exported_on(path))
    try:
        if scan.size > limits.max_bytes:
            raise FileRejected(
                path,
                f"the file is {mib(scan.size)}, more than an export may be ({mib(limits.max_bytes)}, "
                "EXPORT_MAX_BYTES); split the export into smaller files, or raise the limit",
            )
        landed.kind = sniff(path, scan.head)
        if landed.kind == "csv":
            settle_encoding(landed, scan.head, scan.newlines, scan.bad_utf8_at, scan.nul_at)
        else:
            landed.copy = _renamed(copy, ".xlsx")  # readers go by the suffix, whatever the name said
    except FileRejected as err:
        landed.rejected = err.reason
        landed.discard()
        landed.copy = None
    return landed


@dataclass
class _Scan:
    """What :func:`land` learns of a file's bytes on their way to the private copy, in one pass."""

    max_bytes: int  # beyond this, bytes are hashed but not copied (the file is rejected)
    digest: object = field(default_factory=hashlib.sha256)
    head: bytes = b""  # the first 64 KiB (type sniffing, byte-order marks)
    size: int = 0
    written: int = 0
    newlines: int = 0
    nul_at: int | None = None
    bad_utf8_at: int | None = None
    utf8: object = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")())

    def feed(self, block: bytes, out) -> None:
        self.digest.update(block)
        if not self.head:
            self.head = block[: 1 << 16]
        if self.written <= self.max_bytes:
            out.write(block)
            self.written += len(block)
            self.newlines += block.count(b"\n")
            if self.nul_at is None and b"\0" in block:
                self.nul_at = self.size + block.index(b"\0")
            if self.bad_utf8_at is None:
                try:
                    self.utf8.decode(block)
                except UnicodeDecodeError as err:
                    self.bad_utf8_at = self.size + err.start
        self.size += len(block)

    def end(self) -> None:
        if self.bad_utf8_at is None:
            try:
                self.utf8.decode(b"", final=True)
            except UnicodeDecodeError:
                self.bad_utf8_at = self.size  # cut in the middle of a character


def _check_unchanged(path: Path, copy: Path, before: os.stat_result, size: int) -> None:
    """Raise :class:`NotReady` (and drop the copy) if the file changed or went away while it was read."""
    try:
        after = path.stat()
    except FileNotFoundError as err:
        copy.unlink(missing_ok=True)
        raise NotReady(f"{path.name}: gone while it was read") from err
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns) or size != after.st_size:
        copy.unlink(missing_ok=True)
        raise NotReady(f"{path.name}: changed while it was read (still being written?)")


def _temp(workdir: Path, path: Path) -> tuple[int, str]:
    import tempfile

    return tempfile.mkstemp(prefix="landed-", suffix=".csv", dir=workdir)


def _renamed(copy: Path, suffix: str) -> Path:
    target = copy.with_suffix(suffix)
    copy.rename(target)
    return target
