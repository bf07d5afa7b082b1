"""``make bench-scale``: the whole pipeline at several demo scales, from a fresh warehouse each.

    python -m benchmarks.scale --scales 1,10,100 [--write docs/BENCHMARKS.md]

Per scale: new warehouse and case-management databases (``bw_bench_s<n>``, ``bw_bench_s<n>_ops``)
on a PostgreSQL 15 cluster of the bench's own (started in a temporary folder on ``--port``, so
that other work's connections and locks on a shared server do not fail or slow the runs; with
``--shared-server``, the server the pipeline would use), a new landing, release and docs folder;
then

1. demo generation (``bw demo-data``),
2. the first ``bw run`` (every DAG; per-DAG wall time from its log),
3. the re-run with nothing new (``bw run`` again),
4. ``dbt build --full-refresh`` on its own, for dbt's per-node timings (``run_results.json``):
   the ten slowest nodes are reported, and every model's plan is checked for nested loops over two
   large inputs (``benchmarks/plans.py``).

Peak memory: the largest resident set of any single process of each stage's process tree (polled
every 0.2 s with psutil), and the largest sum over the tree; for each stage, which process held the
largest (its command line), how long after the stage started, and the stage's last log line then
(``bw run`` prints a line as each task finishes, so the task that followed it was running).
Results go to stdout as markdown and, with ``--write``, replace the generated section of that file.
Never a pass/fail test: figures depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from benchmarks import plans
from benchmarks.machine import machine
from include import db, warehouse

BW = str(Path(sys.executable).with_name("bw"))
DAG_LINE = re.compile(r"DAG (\w+): (\S+) in ([0-9.]+) s")
TASK_LINE = re.compile(r"^(\w+)\.(\w+)\s+\w+\s+([0-9.]+) s", re.MULTILINE)
BEGIN = "<!-- bench-scale:begin -->"
END = "<!-- bench-scale:end -->"


@dataclass
class Peak:
    """The largest resident set one process of a stage reached, and which process it was."""

    mib: float = 0.0
    command: str = ""
    at: float = 0.0
    """Seconds after the stage started."""
    after: str = ""
    """The stage's last log line at that moment (``bw run`` prints one per finished task)."""

    def describe(self) -> str:
        text = f"{self.mib:.0f} MiB: `{self.command}` at +{self.at:.0f} s"
        return text + (f", after “{self.after}”" if self.after else "")


@dataclass
class Stage:
    name: str
    seconds: float
    peak_process_mib: float
    peak_tree_mib: float
    returncode: int = 0
    output: str = ""
    peak: Peak = field(default_factory=Peak)


@dataclass
class ScaleResult:
    scale: int
    stages: list[Stage] = field(default_factory=list)
    dags: dict[str, float] = field(default_factory=dict)
    rerun_dags: dict[str, float] = field(default_factory=dict)
    slowest_nodes: list[tuple[str, float]] = field(default_factory=list)
    plan_findings: dict[str, list[str]] = field(default_factory=dict)
    raw_rows: dict[str, int] = field(default_factory=dict)
    load_at_start: float = field(default_factory=lambda: os.getloadavg()[0])

    def stage(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.name == name), None)


def _short_command(process: psutil.Process) -> str:
    """The process's command line with paths cut to their last part, e.g. ``bw run``."""
    try:
        args = process.cmdline()
    except psutil.Error:
        return "?"
    words = [Path(a).name if a.startswith("/") else a for a in args]
    text = " ".join(words)
    return text if len(text) <= 100 else text[:99] + "…"


def _last_line(log: Path) -> str:
    """The last non-empty line of ``log`` (its tail only: the log may be large)."""
    with log.open("rb") as f:
        f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
        lines = [line.strip() for line in f.read().decode(errors="replace").splitlines()]
    text = next((line for line in reversed(lines) if line), "")
    return " ".join(text.split())[:120]


def _sample(root: psutil.Process) -> list[tuple[int, psutil.Process]]:
    """(resident bytes, process) for ``root`` and every descendant still alive."""
    try:
        members = [root, *root.children(recursive=True)]
    except psutil.Error:
        return []
    sizes = []
    for member in members:
        with contextlib.suppress(psutil.Error):
            sizes.append((member.memory_info().rss, member))
    return sizes


def _watch(command: list[str], env: dict[str, str], name: str, log: Path) -> Stage:
    """Run ``command`` (output to ``log``); wall time and peak memory of its process tree, and
    which process held the largest resident set, when, and after which log line."""
    started = time.perf_counter()
    log.parent.mkdir(parents=True, exist_ok=True)
    out = log.open("w")
    proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
    peak, tree = Peak(), 0
    done = threading.Event()

    def poll() -> None:
        nonlocal tree
        root = psutil.Process(proc.pid)
        while not done.is_set():
            sizes = _sample(root)
            if sizes:
                tree = max(tree, sum(rss for rss, _ in sizes))
                rss, largest = max(sizes, key=lambda pair: pair[0])
                if rss / 2**20 > peak.mib:  # the command line only when the peak grows
                    peak.mib, peak.at = rss / 2**20, time.perf_counter() - started
                    peak.command, peak.after = _short_command(largest), _last_line(log)
            done.wait(0.2)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    proc.wait()
    done.set()
    watcher.join()
    out.close()
    output = log.read_text(errors="replace")
    seconds = time.perf_counter() - started
    return Stage(name, seconds, peak.mib, tree / 2**20, proc.returncode, output, peak)


def _dag_times(output: str) -> dict[str, float]:
    """Each DAG's wall time from ``bw run``'s log, else the sum of its tasks' times (the summary
    lines ``<dag>.<task>  <state>  <seconds> s`` of ``bw run``)."""
    dags = {m.group(1): float(m.group(3)) for m in DAG_LINE.finditer(output)}
    if dags:
        return dags
    for m in TASK_LINE.finditer(output):
        dags[m.group(1)] = dags.get(m.group(1), 0.0) + float(m.group(3))
    return dags


def _raw_rows(url: str) -> dict[str, int]:
    with db.connect(url) as conn:
        return {
            table: conn.execute(f"select count(*) from raw.{table}").fetchone()[0]
            for table in ("assessment_export_rows", "cm_training_participants")
        }


def run_scale(scale: int, server_url: str, workdir: Path) -> ScaleResult:
    result = ScaleResult(scale)
    wh_url = db.with_database(server_url, f"bw_bench_s{scale}")
    ops_url = db.with_database(server_url, f"bw_bench_s{scale}_ops")
    for url in (wh_url, ops_url):
        db.drop_database(url)
        db.ensure_database(url)
    folder = workdir / f"s{scale}"
    env = {
        **os.environ,
        "WAREHOUSE_URL": wh_url,
        "OPS_DATABASE_URL": ops_url,
        "LANDING_DIR": str(folder / "landing"),
        "RELEASE_DIR": str(folder / "releases"),
        "DOCS_DIR": str(folder / "docs"),
        "SCALE": str(scale),
        "DEMO": "1",
    }
    steps = [
        ("demo generation", [BW, "demo-data"]),
        ("make run (first, fresh warehouse)", [BW, "run"]),
        ("make run (nothing new)", [BW, "run"]),
    ]
    for number, (name, command) in enumerate(steps, 1):
        print(f"scale {scale}: {name} … (log: {folder / f'stage{number}.log'})", flush=True)
        stage = _watch(command, env, name, folder / f"stage{number}.log")
        result.stages.append(stage)
        print(f"scale {scale}: {name}: {stage.seconds:.1f} s (rc {stage.returncode})", flush=True)
        print(f"scale {scale}: {name}: largest process {stage.peak.describe()}", flush=True)
        if stage.returncode != 0:
            print(stage.output[-3000:], flush=True)
    result.dags = _dag_times(result.stages[1].output)
    result.rerun_dags = _dag_times(result.stages[2].output)
    result.raw_rows = _raw_rows(wh_url)

    target = folder / "dbt_target"
    print(f"scale {scale}: dbt build --full-refresh …", flush=True)
    command = [sys.executable, "-c", _DBT_SNIPPET, wh_url, str(target)]
    stage = _watch(command, env, "dbt build --full-refresh (alone)", folder / "stage4.log")
    result.stages.append(stage)
    print(
        f"scale {scale}: dbt build --full-refresh: {stage.seconds:.1f} s (rc {stage.returncode})", flush=True
    )
    print(f"scale {scale}: dbt build --full-refresh: largest process {stage.peak.describe()}", flush=True)
    results = json.loads((target / "run_results.json").read_text()).get("results", [])
    timed = sorted(
        ((r["unique_id"].split(".", 2)[-1], r.get("execution_time", 0.0)) for r in results),
        key=lambda pair: -pair[1],
    )
    result.slowest_nodes = timed[:10]
    result.plan_findings = plans.check(wh_url, target)
    return result


_DBT_SNIPPET = (
    "import sys; from include.transform import dbt as transform; "
    "transform.run_dbt(['build', '--full-refresh'], sys.argv[1], target_path=sys.argv[2], check=False)"
)


def markdown(results: list[ScaleResult]) -> str:
    today = dt.date.today().isoformat()
    lines = [
        BEGIN,
        f"Measured {today} by `make bench-scale` on: {machine()}. One-minute load average when each",
        "scale started (a busy machine makes every figure pessimistic): "
        + ", ".join(f"scale {r.scale}: {r.load_at_start:.1f}" for r in results)
        + ".",
        "",
        "| stage | " + " | ".join(f"scale {r.scale}" for r in results) + " |",
        "|---|" + "---|" * len(results),
    ]

    def row(label: str, cells: list[str]) -> None:
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    row(
        "raw export rows / participant rows",
        [
            f"{r.raw_rows.get('assessment_export_rows', 0):,} / "
            f"{r.raw_rows.get('cm_training_participants', 0):,}"
            for r in results
        ],
    )
    for name in [s.name for s in results[0].stages]:
        row(
            name,
            [
                f"{r.stage(name).seconds:.1f} s" + ("" if r.stage(name).returncode == 0 else " (failed)")
                for r in results
            ],
        )
    dag_ids = list(dict.fromkeys(d for r in results for d in r.dags))
    for dag_id in dag_ids:
        row(f"– DAG `{dag_id}` (first run)", [f"{r.dags.get(dag_id, float('nan')):.1f} s" for r in results])
    for dag_id in dag_ids:
        row(
            f"– DAG `{dag_id}` (nothing new)",
            [f"{r.rerun_dags[dag_id]:.1f} s" if dag_id in r.rerun_dags else "skipped" for r in results],
        )
    first, rerun = "make run (first, fresh warehouse)", "make run (nothing new)"
    row(
        "nothing new ÷ first run", [f"{r.stage(rerun).seconds / r.stage(first).seconds:.0%}" for r in results]
    )
    row(
        "peak memory, largest single process",
        [f"{max(s.peak_process_mib for s in r.stages):.0f} MiB" for r in results],
    )
    row(
        "peak memory, whole process tree",
        [f"{max(s.peak_tree_mib for s in r.stages):.0f} MiB" for r in results],
    )
    for name in [s.name for s in results[0].stages]:  # which stage holds the peak
        row(
            f"– peak memory, largest process: {name}",
            [f"{r.stage(name).peak_process_mib:.0f} MiB" if r.stage(name) else "—" for r in results],
        )
    row(
        "models planned with a nested loop over two large inputs (`benchmarks/plans.py`)",
        [", ".join(f"`{m}`" for m in r.plan_findings) or "none" for r in results],
    )
    lines.append("")
    for r in results:
        lines.append(f"The largest process of each stage at scale {r.scale} (psutil, every 0.2 s):")
        lines.append("")
        lines.extend(f"- {s.name}: {s.peak.describe()}" for s in r.stages)
        lines.append("")
    for r in results:
        lines.append(
            f"dbt's ten slowest nodes at scale {r.scale} (`dbt build --full-refresh`, 4 threads, "
            "execution time from `run_results.json`):"
        )
        lines.append("")
        lines.append("| node | seconds |")
        lines.append("|---|---|")
        lines.extend(f"| `{node}` | {seconds:.2f} |" for node, seconds in r.slowest_nodes)
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def write(path: Path, text: str) -> None:
    """Replace the generated section of ``path`` (or append it)."""
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    if BEGIN in old and END in old:
        new = old[: old.index(BEGIN)] + text + old[old.index(END) + len(END) :]
    else:
        new = old.rstrip("\n") + "\n\n" + text + "\n"
    path.write_text(new)


PG_BIN = Path("/usr/lib/postgresql/15/bin")


@contextlib.contextmanager
def private_server(port: int) -> Iterator[str]:
    """A PostgreSQL cluster of the bench's own (Debian's binaries, run as ``postgres`` when root):
    on a server shared with other work, its connection limit and locks are not the bench's."""
    folder = Path(tempfile.mkdtemp(prefix="bench-scale-pg-"))
    data = folder / "pgdata"
    data.mkdir()
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(folder, "postgres")
        shutil.chown(data, "postgres")
    subprocess.run(
        [*as_postgres, str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c max_connections=200"
    ctl = [*as_postgres, str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(data / "server.log")]
    subprocess.run([*ctl, "-o", options, "-w", "start"], check=True, stdout=subprocess.DEVNULL)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*ctl, "-m", "fast", "-w", "stop"], check=False, stdout=subprocess.DEVNULL)
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="1,10,100", help="comma-separated demo scales")
    parser.add_argument("--write", type=Path, help="markdown file whose generated section is replaced")
    parser.add_argument(
        "--shared-server",
        action="store_true",
        help="use the server the pipeline would use instead of a private cluster on --port",
    )
    parser.add_argument("--port", type=int, default=5439, help="port of the private cluster")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-", dir=os.environ.get("BENCH_DIR")) as tmp:
        with contextlib.ExitStack() as stack:
            if args.shared_server or not (PG_BIN / "initdb").exists():
                server = db.with_database(warehouse.resolve(create_database=False).url, "postgres")
            else:
                server = stack.enter_context(private_server(args.port))
            for scale in (int(s) for s in args.scales.split(",")):
                results.append(run_scale(scale, server, Path(tmp)))
                text = markdown(results)
                if args.write:
                    write(args.write, text)
            for r in results:  # leave nothing behind
                for name in (f"bw_bench_s{r.scale}", f"bw_bench_s{r.scale}_ops"):
                    db.drop_database(db.with_database(server, name))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
