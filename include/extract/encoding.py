"""A landed CSV's text encoding, told from its bytes, and its private copy converted to UTF-8.

UTF-8 with or without BOM, UTF-16 with BOM, Windows-1252; anything else (UTF-32, NUL bytes, mixed
encodings, bare CR line ends) is rejected, saying what to do. Called by
:func:`include.extract.landing.land` with what it learned of the bytes on their way to the copy.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import TYPE_CHECKING

from include.extract.rejects import FIX, FileRejected

if TYPE_CHECKING:
    from include.extract.landing import Landed


def settle_encoding(
    landed: Landed, head: bytes, newlines: int, bad_utf8_at: int | None, nul_at: int | None
) -> None:
    """Decide the CSV's encoding and leave ``landed.copy`` as UTF-8 text; or raise FileRejected.

    ``landed.encoding`` says what was found, also when the text then proves unreadable (UTF-16 or
    UTF-8 as the bytes said); a text neither UTF-8 nor Windows-1252 has none.
    """
    path, copy = landed.path, landed.copy
    assert copy is not None
    if _settle_utf16(landed, head):
        return
    if head.startswith(codecs.BOM_UTF32_LE) or head.startswith(codecs.BOM_UTF32_BE):
        raise FileRejected(
            path,
            "the text is UTF-32, which exports are never in; save it as CSV UTF-8 and drop the new file "
            "in the folder",
        )
    if nul_at is not None:
        raise FileRejected(
            path,
            f"not a CSV export: a NUL byte at byte {nul_at:,} (line {_line_of(copy, nul_at)}): binary "
            "content, or UTF-16 text without a byte-order mark; save it as CSV UTF-8 and drop the new "
            "file in the folder",
        )
    bom = head.startswith(codecs.BOM_UTF8)
    if bad_utf8_at is None:
        landed.encoding = "utf-8 (BOM)" if bom else "utf-8"
        landed.lines = newlines
        _check_line_ends(path, copy, newlines)
        return
    _settle_cp1252(landed, _line_of(copy, bad_utf8_at), bom)


def _settle_utf16(landed: Landed, head: bytes) -> bool:
    """A UTF-16 text with a byte-order mark, converted to UTF-8: True; any other text: False."""
    for bom, codec in ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        if head.startswith(bom) and not head.startswith(codecs.BOM_UTF32_LE):
            landed.encoding = f"{codec} (BOM)"
            landed.copy, landed.lines = _transcode(landed.path, landed.copy, codec, len(bom))
            return True
    return False


def _settle_cp1252(landed: Landed, line: int, bom: bool) -> None:
    """A text that is not UTF-8 from ``line`` on: Windows-1252 if every line reads as it, converted."""
    path, copy = landed.path, landed.copy
    if bom:
        raise FileRejected(
            path,
            f"mixed encodings: the file starts with a UTF-8 byte-order mark but line {line} is not UTF-8; "
            "save it again as CSV UTF-8 and drop the new file in the folder",
        )
    utf8_lines = _lines_with_utf8_characters(copy)
    if utf8_lines:
        raise FileRejected(
            path,
            f"mixed encodings: line {utf8_lines[0]} has UTF-8 characters but line {line} bytes that are "
            "not UTF-8 (Windows-1252?); no single encoding reads every row, so nothing was loaded; save "
            "it again as CSV UTF-8 and drop the new file in the folder",
        )
    try:
        landed.copy, landed.lines = _transcode(path, copy, "cp1252", 0)
    except FileRejected:
        raise FileRejected(
            path,
            f"unknown encoding: line {line} is neither UTF-8 nor Windows-1252 (cp1252) text; save it "
            "again as CSV UTF-8 and drop the new file in the folder",
        ) from None
    landed.encoding = "cp1252"


def _line_of(path: Path, offset: int) -> int:
    """The 1-based line number of a byte offset in a file."""
    line = 1
    with path.open("rb") as f:
        while offset > 0 and (block := f.read(min(1 << 20, offset))):
            line += block.count(b"\n")
            offset -= len(block)
    return line


_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")


def _lines_with_utf8_characters(copy: Path, at_most: int = 1) -> list[int]:
    """Line numbers (up to ``at_most``) that decode as UTF-8 and hold a non-ASCII character."""
    found = []
    with copy.open("rb") as f:
        for number, line in enumerate(f, start=1):
            if line.isascii() or not _UTF8_MULTIBYTE.search(line):
                continue
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                continue
            found.append(number)
            if len(found) >= at_most:
                break
    return found


def _transcode(path: Path, copy: Path, codec: str, skip: int) -> tuple[Path, int]:
    """The copy decoded from ``codec`` (strictly) and written again as UTF-8; (new copy, line breaks)."""
    target = copy.with_name(copy.stem + "-utf8.csv")
    decoder = codecs.getincrementaldecoder(codec)()
    newlines, offset = 0, 0
    with copy.open("rb") as src, target.open("wb") as out:
        src.seek(skip)
        offset = skip
        try:
            while block := src.read(1 << 20):
                text = decoder.decode(block)
                offset += len(block)
                if "\0" in text:
                    raise FileRejected(path, f"not a CSV export: a NUL character in the {codec} text; " + FIX)
                data = text.encode("utf-8")
                newlines += data.count(b"\n")
                out.write(data)
            out.write(decoder.decode(b"", final=True).encode("utf-8"))
        except UnicodeDecodeError as err:
            target.unlink(missing_ok=True)
            raise FileRejected(
                path, f"bytes near byte {offset:,} are not valid {codec} text; " + FIX
            ) from err
    copy.unlink(missing_ok=True)
    _check_line_ends(path, target, newlines)
    return target, newlines


def _check_line_ends(path: Path, copy: Path, newlines: int) -> None:
    """Bare CR line ends (classic Mac) would make the whole file one line: said, not guessed."""
    if newlines == 0:
        with copy.open("rb") as f:
            if b"\r" in f.read(1 << 16):
                raise FileRejected(
                    path,
                    "line ends are bare CR characters (classic Mac), so the file reads as one line; save "
                    "it as CSV with Windows or Unix line ends and drop the new file in the folder",
                )
