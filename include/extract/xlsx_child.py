"""Read a large XLSX sheet in a child process, so that its cells never sit in the loader's memory.

python-calamine holds a whole sheet in memory (about 1.4 times its unpacked XML). The process that
loads a file already holds Airflow, Great Expectations and their connections; at demo scale 100 a
453 MiB sheet read there took that process to 1.2 GiB. Here a child process reads the sheet with
the same code (:func:`include.extract.chunks.read_xlsx_chunks`) and streams the chunks back, pickled,
over a pipe: the sheet's memory is the child's alone and is given back when it exits. The parent
sees the same chunks, the same :class:`~include.extract.records.ParseReport` and the same
:class:`~include.extract.rejects.FileRejected` as if it had read the sheet itself.

Run as ``python -m include.extract.xlsx_child`` by :func:`include.extract.chunks.iter_chunks`; it reads its
arguments from stdin.
"""

from __future__ import annotations

import dataclasses
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from include.config import PROJECT_DIR


def iter_chunks(path: Path, name: Path, report, limits, chunk_rows: int, spec) -> Iterator:
    """The sheet's chunks, read by a child process (see the module docstring)."""
    from include.extract.rejects import FileRejected

    child = subprocess.Popen(
        [sys.executable, "-m", "include.extract.xlsx_child"],
        cwd=PROJECT_DIR,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    finished = False
    try:
        pickle.dump((Path(path), Path(name), limits, chunk_rows, spec), child.stdin)
        child.stdin.close()
        while True:
            try:
                tag, payload = pickle.load(child.stdout)
            except EOFError:
                break
            if tag == "chunk":
                yield payload
            elif tag == "report":
                for key, value in payload.items():
                    setattr(report, key, value)
            elif tag == "rejected":
                finished = True
                raise FileRejected(Path(payload[0]), payload[1])
            elif tag == "done":
                finished = True
    finally:
        if not finished and child.poll() is None:
            child.kill()  # the caller stopped early (or failed): the child's work is not needed
        child.stdout.close()
        error = child.stderr.read().decode(errors="replace")
        child.stderr.close()
        code = child.wait()
    if not finished:
        raise RuntimeError(
            f"{Path(name).name}: the XLSX reader process ended early (exit {code}): {error[-2000:]}"
        )


def _main() -> None:
    from include.extract.chunks import read_xlsx_chunks
    from include.extract.records import ParseReport
    from include.extract.rejects import FileRejected

    path, name, limits, chunk_rows, spec = pickle.load(sys.stdin.buffer)
    out = sys.stdout.buffer
    report = ParseReport(kind="xlsx", reader="calamine")
    try:
        for chunk in read_xlsx_chunks(path, name, report, limits, chunk_rows, spec):
            pickle.dump(("chunk", chunk), out, protocol=pickle.HIGHEST_PROTOCOL)
    except FileRejected as err:
        pickle.dump(("report", dataclasses.asdict(report)), out)
        pickle.dump(("rejected", (str(err.path), err.reason)), out)
    else:
        pickle.dump(("report", dataclasses.asdict(report)), out)
        pickle.dump(("done", None), out)
    out.flush()


if __name__ == "__main__":
    _main()
