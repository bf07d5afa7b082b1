"""``make bench-load``: the export loader against a bare ``COPY`` (the ceiling) and ``DataFrame.to_sql``.

The same export rows (demo sources at scale 10 by default, from :func:`include.demo.generate`, or
synthetic exports where the generator is unavailable) are loaded three ways, each in a fresh
subprocess into a throwaway database on the warehouse server:

- ``extract_load``: :func:`include.load.load_assessment_exports` without validation (checksums,
  staging by ``COPY``, the date check, publishing: issue 4's part alone);
- ``loader_warm``: the same with GX validation, GX imported and its context built before the
  clock starts, as in a long-lived worker;
- ``loader``: the same in a fresh process, GX's start-up (import, context) included, as a task
  process pays it;
- ``loader_all`` (only with ``--only``): the fresh loader on every export, the XLSX ones too (which
  the others leave out, bare ``COPY`` reading CSV only): the peak memory of a real run;
- ``copy``: one ``COPY … FROM STDIN (FORMAT csv, HEADER)`` of each file's bytes into a plain table;
- ``to_sql``: ``pandas.read_csv`` in chunks then ``DataFrame.to_sql`` (pandas' default method).

Every loader run loads into a warehouse that holds the demo's factory registry
(``raw.cm_factories``), as in ``make run``, where the case-management DAG runs first and the exports
are checked against it. Peak memory is the child's ``ru_maxrss``. Validation is reported as the
time it adds to the load (warm loader minus extract + load), per million rows, against the extract +
load time, and as a share of the warm extract-validate-load time.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

from benchmarks.machine import machine, peak_rss_mib
from include import db
from include.config import PROJECT_DIR, settings
from include.extract import case_management as extract_ops

MODES = ("extract_load", "loader_warm", "loader", "copy", "to_sql")  # the default set
EXTRA_MODES = ("loader_all",)  # on request (--only): for peak memory at large scales
REGISTRY_FILE = "registry_factories.csv"  # the demo's factory registry, in raw.cm_factories' shape
CHILD = "import sys, json; from benchmarks.load import _child; print(json.dumps(_child(*sys.argv[1:])))"


def _child(mode: str, url: str, landing: str) -> dict:
    """Runs in a fresh interpreter: one loading method, timed, with this process's peak memory."""
    folder = Path(landing) / "assessments"
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".csv")
    started = time.perf_counter()
    if mode == "loader_all":  # every export of the demo, the XLSX ones too: as make run loads them
        landing = str(_all_exports(Path(landing).parent))
    if mode in ("extract_load", "loader_warm", "loader", "loader_all"):
        from include import load, warehouse
        from include.validate import suites as validate

        warehouse.bootstrap(url)
        registry = Path(landing).parent / REGISTRY_FILE
        if registry.exists():  # as extract_case_management leaves it: exports are checked against it
            with db.connect(url) as conn, conn.cursor() as cur, registry.open("rb") as f:
                with cur.copy("copy raw.cm_factories from stdin (format csv)") as copy:
                    copy.write(f.read())
        if mode == "loader_warm":
            validate.warm_up(url, load.EXPORT_ENTITY)  # GX imported, its context and suite built
        started = time.perf_counter()
        summary = load.load_assessment_exports(url, Path(landing), validate=mode != "extract_load")
        result = {
            "rows": summary["rows_loaded"] + summary["rows_quarantined"],
            "seconds": time.perf_counter() - started,
            "steps": summary["seconds"],
        }
    elif mode == "copy":
        with db.connect(url) as conn:
            cols = ", ".join(f'"c{i}" text' for i in range(14))
            conn.execute(f"create table bench_copy ({cols})")
            conn.commit()
            started = time.perf_counter()
            rows = 0
            with conn.cursor() as cur:
                for path in files:
                    with (
                        cur.copy("copy bench_copy from stdin (format csv, header true)") as copy,
                        path.open("rb") as f,
                    ):
                        while block := f.read(1 << 20):
                            copy.write(block)
                    rows += cur.rowcount
            conn.commit()
        result = {"rows": rows, "seconds": time.perf_counter() - started}
    elif mode == "to_sql":
        import pandas as pd
        import sqlalchemy

        engine = sqlalchemy.create_engine(db.sqlalchemy_url(url))
        rows = 0
        for path in files:
            for frame in pd.read_csv(
                path, dtype=str, encoding="utf-8-sig", keep_default_na=False, chunksize=50_000
            ):
                frame.to_sql("bench_to_sql", engine, if_exists="append", index=False, chunksize=10_000)
                rows += len(frame)
        engine.dispose()
        result = {"rows": rows, "seconds": time.perf_counter() - started}
    else:
        raise ValueError(mode)
    return {**result, "peak_mib": peak_rss_mib()}


def _all_exports(workdir: Path) -> Path:
    """A landing folder with links to every export, CSV and XLSX (for ``loader_all``)."""
    folder = workdir / "all_exports" / "assessments"
    folder.mkdir(parents=True, exist_ok=True)
    for path in [
        *(workdir / "landing" / "assessments").iterdir(),
        *(workdir / "not_benchmarked").glob("*.xlsx"),
    ]:
        link = folder / path.name
        if not link.exists():
            link.symlink_to(path.resolve())
    return folder.parent


def _measure(mode: str, url: str, landing: Path, docs: Path) -> dict:
    """One method in a fresh interpreter (so that its peak memory and GX start-up are its own)."""
    # files the benchmark wrote a moment ago are complete: no settle wait inside the measurement
    env = {
        **os.environ,
        "PYTHONPATH": str(PROJECT_DIR),
        "DOCS_DIR": str(docs),
        "LANDING_MIN_AGE_SECONDS": "0",
    }
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, url, str(landing)],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"bench {mode} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def synthetic_exports(landing: Path, rows: int, files: int = 5, seed: int = 2025) -> None:
    """Export-shaped CSVs (BOM, CRLF) when the demo generator is not available."""
    from include.extract.columns import CONTRACT_COLUMNS

    rng = random.Random(seed)
    folder = landing / "assessments"
    folder.mkdir(parents=True, exist_ok=True)
    clusters = [
        ("Working Time", "Overtime"),
        ("Compensation", "Overtime Wages"),
        ("Child Labour", "Child Labourers"),
        ("Occupational Safety and Health", "Worker Protection"),
    ]
    per_file, quest = rows // files, 0
    for f in range(files):
        with (folder / f"synthetic_{f}.csv").open("w", newline="", encoding="utf-8-sig") as out:
            writer = csv.writer(out, lineterminator="\r\n")
            writer.writerow(CONTRACT_COLUMNS)
            for i in range(per_file):
                if i % 200 == 0:
                    quest += 1
                    factory = rng.randrange(1, 500)
                    date = f"{rng.randrange(1, 28):02d}/{rng.randrange(1, 13):02d}/{2015 + f}"
                cluster, cp = clusters[i % 4]
                writer.writerow(
                    [
                        "Pakistan",
                        factory,
                        f"Factory {factory}",
                        quest,
                        date,
                        f + 1,
                        "NCQ",
                        i % 200,
                        f"Question {i % 200} about {cp}",
                        cp,
                        cluster,
                        rng.choice(["0", "1", ""]),
                        "",
                        "Garment CAT",
                    ]
                )


def prepare_sources(workdir: Path, scale: int) -> tuple[Path, str]:
    landing = workdir / "landing"
    if (landing / "assessments").is_dir() and any((landing / "assessments").iterdir()):
        return landing, "reused"
    try:
        from include.demo import generate
    except ImportError:
        generate = None
    if generate is not None:
        ops = db.with_database(_server(), f"bwbench_ops_{uuid.uuid4().hex[:8]}")
        db.ensure_database(ops)
        generate(landing, ops, scale=scale)
        with db.connect(ops) as conn, conn.cursor() as cur, (workdir / REGISTRY_FILE).open("wb") as f:
            columns = ", ".join(extract_ops.spec("factories").columns)
            query = (
                f"copy (select {columns}, 0, 'public.factories', row_number() over (), now() "
                "from public.factories) to stdout (format csv)"
            )
            with cur.copy(query) as copy:
                for block in copy:
                    f.write(block)
        db.drop_database(ops)
        # Bare COPY reads CSV only: every method loads the same CSV files.
        aside = workdir / "not_benchmarked"
        aside.mkdir(exist_ok=True)
        for path in (landing / "assessments").iterdir():
            if path.suffix.lower() != ".csv":
                path.rename(aside / path.name)
        return landing, f"demo generator, scale {scale} (CSV exports)"
    synthetic_exports(landing, rows=scale * 100_000)
    return landing, f"synthetic exports, {scale * 100_000} rows (demo generator unavailable)"


def _server() -> str:
    from include import warehouse

    return db.with_database(warehouse.resolve().url, "postgres")


def report(results: dict) -> list[str]:
    """The benchmark's table and derived figures, as printed and as pasted into docs/LOADING.md."""
    lines = ["| method | rows | seconds | rows/s | peak MiB |", "|---|---:|---:|---:|---:|"]
    labels = {
        "extract_load": "loader, extract + load only (no validation)",
        "loader_warm": "loader, extract + validate + load, warm process (GX imported)",
        "loader": "loader, the same in a fresh process (GX start-up included)",
        "loader_all": "loader, fresh process, every export (the XLSX too, parsed row by row)",
        "copy": "bare COPY (ceiling)",
        "to_sql": "pandas to_sql (default method)",
    }
    rates = {}
    for mode, label in labels.items():
        if mode in results:
            r = results[mode]
            rates[mode] = r["rows"] / r["seconds"]
            lines.append(
                f"| {label} | {r['rows']:,} | {r['seconds']:.2f} | {rates[mode]:,.0f} | {r['peak_mib']:.0f} |"
            )
    lines.append("")
    for mode in ("extract_load", "loader_warm", "loader", "loader_all"):
        if mode in results:
            steps = results[mode]["steps"]
            lines.append(f"{mode} phases (s): " + ", ".join(f"{k} {v:.2f}" for k, v in steps.items()))
    if "extract_load" in results and "loader_warm" in results:
        el, warm = results["extract_load"]["seconds"], results["loader_warm"]["seconds"]
        added = warm - el
        lines.append(
            f"validation adds {added:.2f} s to the load: "
            f"{added / results['loader_warm']['rows'] * 1e6:.2f} s per "
            f"million export rows, {added / el:.2f}x the extract + load time (target: at most half), "
            f"{added / warm:.0%} of the warm extract-validate-load time"
        )
    if "validate" in results.get("loader_warm", {}).get("steps", {}):
        # the same, timed inside the warm run itself (no difference of two runs' noise)
        warm = results["loader_warm"]
        own = warm["steps"]["validate"] + warm["steps"].get("data_docs", 0.0)
        lines.append(
            f"validation within the warm run (validate + data_docs): {own:.2f} s, "
            f"{own / warm['rows'] * 1e6:.2f} s per million export rows, "
            f"{own / (warm['seconds'] - own):.2f}x the rest of that run, {own / warm['seconds']:.0%} of it"
        )
    for base, target in (("copy", "target >= 60%"), ("to_sql", "target >= 5x")):
        if base in rates:
            shown = [
                f"{mode} {rates[mode] / rates[base]:.0%}"
                if base == "copy"
                else f"{mode} {rates[mode] / rates[base]:.1f}x"
                for mode in ("extract_load", "loader_warm", "loader")
                if mode in rates
            ]
            lines.append(
                f"loader / {'bare COPY' if base == 'copy' else 'to_sql'}: "
                + ", ".join(shown)
                + f" ({target})"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--workdir", type=Path, default=None, help="default: data/bench/scale_<n>")
    parser.add_argument("--only", choices=[*MODES, *EXTRA_MODES], action="append")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of every method; the median is shown")
    parser.add_argument(
        "--cleanup", action="store_true", help="delete the generated sources afterwards (large scales)"
    )
    args = parser.parse_args(argv)
    workdir = args.workdir or settings().landing_dir.parent / "bench" / f"scale_{args.scale}"
    landing, origin = prepare_sources(workdir, args.scale)
    size = sum(p.stat().st_size for p in (landing / "assessments").iterdir())
    print(f"sources: {origin}; {size / 2**20:.1f} MiB of exports in {landing / 'assessments'}")
    print(f"machine: {machine()}")
    runs: dict[str, list[dict]] = {}
    try:
        for n in range(args.repeat):  # rounds of every method, so that a busy moment hits them all
            for mode in args.only or list(MODES):
                url = db.with_database(_server(), f"bwbench_{mode}_{uuid.uuid4().hex[:8]}")
                db.ensure_database(url)
                try:
                    runs.setdefault(mode, []).append(_measure(mode, url, landing, workdir / f"docs_{mode}"))
                finally:
                    db.drop_database(url)
                    shutil.rmtree(workdir / f"docs_{mode}", ignore_errors=True)
            print(f"  round {n + 1} of {args.repeat} done", flush=True)
    finally:
        if args.cleanup:
            shutil.rmtree(workdir, ignore_errors=True)
    results = {mode: _median(measured) for mode, measured in runs.items()}
    print("\n".join(report(results)))
    if args.repeat > 1:
        print(
            f"(median of {args.repeat} runs; seconds min-max: "
            + ", ".join(
                f"{m} {min(r['seconds'] for r in rs):.2f}-{max(r['seconds'] for r in rs):.2f}"
                for m, rs in runs.items()
            )
            + ")"
        )
    return 0


def _median(measured: list[dict]) -> dict:
    """The run of median wall time (its phases and memory with it)."""
    return sorted(measured, key=lambda r: r["seconds"])[len(measured) // 2]


if __name__ == "__main__":
    raise SystemExit(main())
