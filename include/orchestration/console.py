"""What ``bw run`` shows a person: one line per task as it finishes, a summary, and a log file.

- Task lines: ``DAG.task  status  seconds  what it did`` (rows loaded / quarantined, dbt's
  counts, the release), from the events include/orchestration/run_dags.py writes as each task finishes.
- The summary, read from the warehouse after the run (``audit.load_batches``,
  ``quarantine.rejected_rows``, ``audit.validation_results``, ``audit.transform_runs``): per
  source the batches and rows loaded, quarantined or rejected with the first reason; validation
  warnings; dbt's models and tests; the release; the docs sites; the warehouse and a ``psql``
  command without the password; the log file; and, last, what failed.
- Airflow's and dbt's full logs go to ``LOG_DIR/run-<UTC time>.log``; ``bw run -v`` also shows
  them live.
- On a terminal, a step running longer than a couple of seconds shows a one-line progress
  indicator (rewritten in place); elsewhere (a CI log, a pipe) a "still running" line once a
  minute, so a log is never flooded.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import select
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from include import db

SPIN_AFTER = 2.0
"""Seconds a step runs before the terminal shows it as running."""
NON_TTY_EVERY = 60.0
"""Seconds between "still running" lines when the output is not a terminal."""
NAME_WIDTH = 52

SOURCE_NAMES = {
    "assessment_exports": "assessment exports",
    "case_management": "case management",
    "survey_files": "survey waves",
}
ALWAYS_SHOWN = {"respondent under 14": "child labour signal"}
"""Warnings said on a line of their own, never folded into "+n more" (docs/SURVEYS.md)."""


def redact(url: str) -> str:
    """The URL with its password replaced by ``***`` (``include.db.redact`` where it exists)."""
    if hasattr(db, "redact"):
        return db.redact(url)
    parts = db.parts(url)
    if "password" not in parts:
        return db.to_url(parts)
    parts["password"] = "REDACTED"
    return db.to_url(parts).replace(":REDACTED@", ":***@")


def without_password(url: str) -> str:
    parts = db.parts(url)
    parts.pop("password", None)
    return db.to_url(parts)


def new_log_path(log_dir: Path) -> Path:
    log_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = log_dir / f"run-{stamp}.log"
    n = 1
    while path.exists():
        n += 1
        path = log_dir / f"run-{stamp}-{n}.log"
    return path


def display_path(path: Path | str) -> str:
    """A path relative to the working directory when it lies below it (shorter lines)."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------- the screen


class Console:
    """Lines for people on ``stream``; a progress indicator while a step runs."""

    def __init__(self, stream=None, tty: bool | None = None) -> None:
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self.lines = 0
        self._lock = threading.Lock()
        self._activity: tuple[str, float] | None = None
        self._shown = False
        self._last_note = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- lines
    def line(self, text: str = "") -> None:
        with self._lock:
            self._clear()
            self.stream.write(text + "\n")
            self.stream.flush()
            self.lines += 1

    def _clear(self) -> None:
        if self._shown:
            self.stream.write("\r\033[K")
            self._shown = False

    # ---- progress
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._tick_loop, name="bw-progress", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        with self._lock:
            self._clear()
            self.stream.flush()

    def busy(self, label: str | None) -> None:
        """What is running now (None: nothing)."""
        with self._lock:
            self._activity = (label, time.monotonic()) if label else None
            self._last_note = time.monotonic()
            self._clear()

    def _tick_loop(self) -> None:
        frames = "|/-\\"
        n = 0
        while not self._stop.wait(0.25):
            n += 1
            with self._lock:
                if not self._activity:
                    continue
                label, since = self._activity
                elapsed = time.monotonic() - since
                if self.tty:
                    if elapsed >= SPIN_AFTER:
                        self.stream.write(f"\r\033[K  {frames[n % 4]} {label}  {elapsed:.0f} s")
                        self.stream.flush()
                        self._shown = True
                elif time.monotonic() - self._last_note >= NON_TTY_EVERY:
                    self.stream.write(f"  ... {label}: still running ({elapsed:.0f} s)\n")
                    self.stream.flush()
                    self._last_note = time.monotonic()
                    self.lines += 1

    @contextmanager
    def step(self, label: str):
        """A step of ``bw run`` outside Airflow: progress while it runs, a line when it ends."""
        started = time.monotonic()
        self.busy(label)
        result = {"note": ""}
        try:
            yield result
        except BaseException:
            self.busy(None)
            self.line(task_line(label, "failed", time.monotonic() - started, result["note"]))
            raise
        self.busy(None)
        self.line(task_line(label, "ok", time.monotonic() - started, result["note"]))


STATUS_WORDS = {
    "success": "ok",
    "ok": "ok",
    "failed": "FAILED",
    "up_for_retry": "retry",
    "upstream_failed": "not run",
    "skipped": "skipped",
}


def task_line(name: str, state: str, seconds: float | None, note: str = "") -> str:
    word = STATUS_WORDS.get(state, state)
    secs = f"{seconds:6.1f} s" if seconds is not None else " " * 8
    text = f"{name:<{NAME_WIDTH}} {word:<7} {secs}"
    return f"{text}  {note}".rstrip() if note else text


# --------------------------------------------------------------------------- the child (run_dags)


def run_pipeline_process(
    cmd: list[str], env: dict[str, str], log_file, console: Console, verbose: bool = False
) -> tuple[int, list[dict]]:
    """Run :mod:`include.orchestration.run_dags`; its output to ``log_file`` (and the screen with
    ``verbose``), its events to the console as they come. Returns the exit code and the events."""
    from include.orchestration.run_dags import EVENTS_FD_ENV

    read_fd, write_fd = os.pipe()
    env = {**env, EVENTS_FD_ENV: str(write_fd), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        cmd,
        env=env,
        pass_fds=(write_fd,),
        stdout=subprocess.PIPE if verbose else log_file,
        stderr=subprocess.STDOUT,
    )
    os.close(write_fd)
    tee = None
    if verbose:
        tee = threading.Thread(target=_tee, args=(proc.stdout, log_file, console), daemon=True)
        tee.start()
    events: list[dict] = []
    buffer = b""
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:
        while True:
            ready, _, _ = select.select([pipe], [], [], 1.0)
            if not ready:
                continue
            chunk = pipe.read(65536)
            if not chunk:
                break
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            for raw in complete:
                if raw.strip():
                    event = json.loads(raw)
                    events.append(event)
                    show_event(event, console)
    code = proc.wait()
    if tee is not None:
        tee.join(timeout=5)
    return code, events


def _tee(stream, log_file, console: Console) -> None:
    for raw in iter(stream.readline, b""):
        log_file.write(raw)
        log_file.flush()
        with console._lock:
            console._clear()
            console.stream.write(raw.decode(errors="replace"))
            console.stream.flush()


def show_event(event: dict, console: Console) -> None:
    kind = event.get("event")
    if kind == "task_started":
        console.busy(f"{event['dag_id']}.{event['task_id']}")
    elif kind == "task_finished":
        console.busy(None)
        name = f"{event['dag_id']}.{event['task_id']}"
        note = event.get("note") or ""
        if event.get("state") in ("failed", "up_for_retry") and event.get("error"):
            note = f"{note}; " if note else ""
            note += _one_line(event["error"], 160)
        console.line(task_line(name, event.get("state", "?"), event.get("seconds"), note))
    elif kind == "dag_skipped":
        console.line(task_line(event["dag_id"], "skipped", None, event.get("reason", "")))


def _one_line(text: str, limit: int) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


# --------------------------------------------------------------------------- per task


class TaskProbe:
    """What a task did, for its console line: batches it created, dbt's counts, the release."""

    def __init__(self, warehouse_url: str | None) -> None:
        self.url = warehouse_url

    def _scalar(self, query: str, params=()):
        with db.connect(self.url) as conn:
            return conn.execute(query, params).fetchone()[0]

    def before(self, dag_id: str, task_id: str) -> dict:
        from include.config import settings

        mark = {"t": time.time(), "batch": 0, "transform": 0, "releases": []}
        if self.url:
            mark["batch"] = self._scalar("select coalesce(max(batch_id), 0) from audit.load_batches")
            if task_id == "dbt_build":
                mark["transform"] = self._scalar(
                    "select coalesce(max(run_id), 0) from audit.transform_runs"
                    if _has_table(self.url, "audit.transform_runs")
                    else "select 0"
                )
        if task_id == "publish_release":
            root = settings().release_dir
            mark["releases"] = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
        return mark

    def after(self, dag_id: str, task_id: str, mark: dict | None) -> str:
        from include.config import settings

        if not mark or not self.url:
            return ""
        if task_id == "dbt_build":
            with db.connect(self.url) as conn:
                row = conn.execute(
                    "select summary from audit.transform_runs where run_id > %s order by run_id desc limit 1",
                    (mark["transform"],),
                ).fetchone()
            return dbt_counts_text(row[0]) if row and row[0] else ""
        if task_id == "dbt_docs":
            page = settings().docs_dir / "dbt" / "index.html"
            fresh = page.exists() and page.stat().st_mtime >= mark["t"]
            return "site regenerated" if fresh else "site unchanged (same project and schema)"
        if task_id == "publish_release":
            root = settings().release_dir
            new = sorted(
                set(p.name for p in root.iterdir() if not p.name.startswith(".")) - set(mark["releases"])
            )
            return f"new release {new[-1]}" if new else "release unchanged (same content)"
        with db.connect(self.url) as conn:
            rows = conn.execute(
                "select status, count(*), coalesce(sum(rows_loaded), 0), coalesce(sum(rows_quarantined), 0) "
                "from audit.load_batches where batch_id > %s group by status",
                (mark["batch"],),
            ).fetchall()
        if not rows or all(status == "loaded" and loaded == 0 and q == 0 for status, _n, loaded, q in rows):
            return "nothing new" if task_id.startswith("load_") or rows else ""
        return batches_text({status: (n, loaded, quarantined) for status, n, loaded, quarantined in rows})


def _has_table(url: str, name: str) -> bool:
    with db.connect(url) as conn:
        return conn.execute("select to_regclass(%s) is not null", (name,)).fetchone()[0]


def batches_text(by_status: dict[str, tuple[int, int, int]]) -> str:
    batches = sum(v[0] for v in by_status.values())
    loaded = sum(v[1] for v in by_status.values())
    quarantined = sum(v[2] for v in by_status.values())
    parts = [f"{batches} batch{'es' if batches != 1 else ''}", f"{loaded:,} rows loaded"]
    if quarantined:
        parts.append(f"{quarantined:,} quarantined")
    for status in ("rejected", "quarantined", "abandoned", "staging"):
        if status in by_status:
            n = by_status[status][0]
            word = "not finished" if status == "staging" else status
            parts.append(f"{n} batch{'es' if n != 1 else ''} {word}")
    return ", ".join(parts)


def dbt_counts_text(summary: dict) -> str:
    counts = summary.get("counts", {})

    def n(kind: str, *statuses: str) -> int:
        return sum(counts.get(kind, {}).get(s, 0) for s in statuses)

    models_ok = n("model", "success")
    models_bad = n("model", "error")
    tests = {k: v for k, v in counts.items() if k in ("test", "unit_test")}
    passed = sum(v.get("pass", 0) + v.get("success", 0) for v in tests.values())
    warned = sum(v.get("warn", 0) for v in tests.values())
    failed = sum(v.get("fail", 0) + v.get("error", 0) for v in tests.values())
    skipped = sum(v.get("skipped", 0) for v in counts.values())
    text = f"{models_ok} models"
    if models_bad:
        text += f" ({models_bad} failed)"
    text += f", {passed} tests passed, {warned} warned, {failed} failed"
    if skipped:
        text += f", {skipped} skipped"
    return text


# --------------------------------------------------------------------------- the summary


def db_now(url: str) -> dt.datetime:
    with db.connect(url) as conn:
        return conn.execute("select clock_timestamp()").fetchone()[0]


def source_summary(url: str, since: dt.datetime) -> list[dict]:
    """Per source, the batches of this run (started or finished since ``since``), as
    ``audit.load_batches`` has them, with the first rejected row's reason and the batches that did
    not load."""
    with db.connect(url) as conn:
        rows = conn.execute(
            """
            select source, count(*), coalesce(sum(rows_read), 0), coalesce(sum(rows_loaded), 0),
                   coalesce(sum(rows_quarantined), 0),
                   count(*) filter (where status = 'loaded'),
                   count(*) filter (where status <> 'loaded')
            from audit.load_batches
            where started_at >= %(since)s or finished_at >= %(since)s
            group by source order by source
            """,
            {"since": since},
        ).fetchall()
        out = []
        for source, batches, read, loaded, quarantined, ok, bad in rows:
            failed = conn.execute(
                """
                select source_object, status, coalesce(message, '') from audit.load_batches
                where source = %(source)s and status <> 'loaded'
                  and (started_at >= %(since)s or finished_at >= %(since)s)
                order by batch_id
                """,
                {"source": source, "since": since},
            ).fetchall()
            first = conn.execute(
                """
                select r.source, r.source_row, r.reason from quarantine.rejected_rows r
                join audit.load_batches b using (batch_id)
                where b.source = %(source)s and (b.started_at >= %(since)s or b.finished_at >= %(since)s)
                order by r.batch_id, r.source_row nulls first limit 1
                """,
                {"source": source, "since": since},
            ).fetchone()
            out.append(
                {
                    "source": source,
                    "batches": batches,
                    "rows_read": read,
                    "rows_loaded": loaded,
                    "rows_quarantined": quarantined,
                    "batches_loaded": ok,
                    "batches_not_loaded": bad,
                    "failed_batches": [{"object": o, "status": s, "message": m} for o, s, m in failed],
                    "first_reason": first,
                }
            )
    return out


def validation_warnings(url: str, since: dt.datetime) -> list[tuple[str, int, int]]:
    """Failed warning-level expectations of this run's batches: (rule, batches, rows)."""
    with db.connect(url) as conn:
        return conn.execute(
            """
            select v.expectation, count(distinct v.batch_id), coalesce(sum(v.unexpected_count), 0)
            from audit.validation_results v join audit.load_batches b using (batch_id)
            where not v.success and v.severity = 'warning'
              and (b.started_at >= %(since)s or b.finished_at >= %(since)s)
            group by v.expectation order by 3 desc, 1
            """,
            {"since": since},
        ).fetchall()


def transform_summary(url: str, since: dt.datetime) -> dict | None:
    if not _has_table(url, "audit.transform_runs"):
        return None
    with db.connect(url) as conn:
        row = conn.execute(
            "select status, summary, message, full_refresh from audit.transform_runs "
            "where started_at >= %s order by run_id desc limit 1",
            (since,),
        ).fetchone()
    if not row:
        return None
    status, summary, message, full_refresh = row
    return {"status": status, "summary": summary or {}, "message": message, "full_refresh": full_refresh}


def latest_release(release_dir: Path) -> Path | None:
    if not release_dir.is_dir():
        return None
    found = [p for p in release_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def summary_lines(
    *,
    url: str,
    since: dt.datetime,
    started_wall: float,
    events: list[dict],
    cfg,
    warehouse_kind: str,
    psql: str,
    log_path: Path,
    elapsed: float,
    failures: list[str],
    embedded: bool = False,
) -> list[str]:
    """The summary printed at the end of ``bw run``; the failures come last."""
    lines = ["", "Summary"]
    lines += _source_lines(url, since)
    lines += _warning_lines(url, since)
    lines += _dbt_lines(url, since, events)
    lines.append(_release_line(cfg.release_dir, events, started_wall))
    lines.append(_docs_line(cfg, started_wall))
    lines.append(f"Warehouse ({warehouse_kind}): {redact(url)}")
    lines.append(f"Query it:  {psql} -c 'select * from marts.programme_kpis'")
    if embedded:
        lines.append("The embedded PostgreSQL keeps running for your queries; `make stop` stops it.")
    lines.append(f"Full log:  {display_path(log_path)}")
    if failures:
        lines.append("FAILED:")
        lines.extend(f"  {f}" for f in failures)
        lines.append(f"bw run FAILED after {elapsed:.1f} s (exit 1)")
    else:
        lines.append(f"bw run finished in {elapsed:.1f} s")
    return lines


def _source_lines(url: str, since: dt.datetime) -> list[str]:
    """Per source: batches and rows loaded or quarantined, the first reason, the failed batches."""
    sources = source_summary(url, since)
    if not sources:
        return ["  Sources: nothing new in this run"]
    lines = []
    for s in sources:
        name = SOURCE_NAMES.get(s["source"], s["source"])
        if s["rows_read"] == 0 and not s["batches_not_loaded"]:
            lines.append(f"  {name + ':':<20} nothing new")
            continue
        text = (
            f"  {name + ':':<20} {s['batches']} batch{'es' if s['batches'] != 1 else ''}, "
            f"{s['rows_loaded']:,} rows loaded, {s['rows_quarantined']:,} quarantined"
        )
        if s["batches_not_loaded"]:
            text += f", {s['batches_not_loaded']} batch(es) not loaded"
        lines.append(text)
        if s["first_reason"]:
            obj, row, reason = s["first_reason"]
            lines.append(f"    first reason: {obj} row {row}: {_one_line(reason, 120)}")
        for b in s["failed_batches"][:3]:
            status = "not finished" if b["status"] == "staging" else b["status"]
            message = _one_line(b["message"], 120) or "see the log"
            lines.append(f"    {status}: {b['object']}: {message}")
        if len(s["failed_batches"]) > 3:
            lines.append(f"    … and {len(s['failed_batches']) - 3} more (audit.load_batches)")
    return lines


def _warning_lines(url: str, since: dt.datetime) -> list[str]:
    """The warnings always shown (ALWAYS_SHOWN) one per line, then the first three others."""
    warnings = validation_warnings(url, since)
    lines = [
        f"  {ALWAYS_SHOWN[rule].capitalize()}: {rule}, {rows:,} row(s) in {n} file(s)"
        " (audit.validation_results names the submissions)"
        for rule, n, rows in warnings
        if rule in ALWAYS_SHOWN
    ]
    warnings = [w for w in warnings if w[0] not in ALWAYS_SHOWN]
    if not warnings:
        return [*lines, "  Validation warnings: none"]
    shown = "; ".join(
        f"{rule} ({rows:,} rows in {n} batch{'es' if n != 1 else ''})" for rule, n, rows in warnings[:3]
    )
    more = f"; +{len(warnings) - 3} more" if len(warnings) > 3 else ""
    return [*lines, f"  Validation warnings: {shown}{more}"]


def _dbt_lines(url: str, since: dt.datetime, events: list[dict]) -> list[str]:
    """Whether dbt ran (and why not), its counts and its first warnings."""
    decision = next((e for e in events if e.get("event") == "decision"), None)
    tr = transform_summary(url, since)
    if decision is not None and not decision.get("needed"):
        return [f"  dbt: not run, {decision.get('reason')}"]
    if tr is None:
        return ["  dbt: not run"]
    text = dbt_counts_text(tr["summary"]) if tr["summary"].get("counts") else "no results"
    flag = " (full refresh)" if tr["full_refresh"] else ""
    lines = [f"  dbt{flag}: {text}" + ("" if tr["status"] == "success" else f", build {tr['status']}")]
    for w in tr["summary"].get("warnings", [])[:3]:
        lines.append(f"    warned: {w['node']}: {_one_line(w['message'], 100)}")
    return lines


def _release_line(release_dir: Path, events: list[dict], started_wall: float) -> str:
    """The current research release, and whether this run wrote it."""
    release = latest_release(release_dir)
    released = any(
        e.get("event") == "task_finished"
        and e.get("task_id") == "publish_release"
        and e.get("state") == "success"
        for e in events
    )
    if release is None:
        return "  Release: none yet"
    if released and release.stat().st_mtime >= started_wall:
        return f"  Release: {display_path(release)} (new)"
    if released:
        return f"  Release: {display_path(release)} (unchanged)"
    return f"  Release: none published in this run; current: {display_path(release)}"


def _docs_line(cfg, started_wall: float) -> str:
    """Where the dbt docs, the Data Docs and the site are, and whether this run rebuilt them."""
    dbt_page = cfg.docs_dir / "dbt" / "index.html"
    gx_page = cfg.docs_dir / "data_docs" / "index.html"
    docs = []
    if dbt_page.exists():
        state = "regenerated" if dbt_page.stat().st_mtime >= started_wall else "unchanged"
        docs.append(f"dbt {display_path(dbt_page)} ({state})")
    if gx_page.exists():
        docs.append(f"validation {display_path(gx_page)}")
    site_page = getattr(cfg, "site_dir", None)
    if site_page is not None and (site_page / "index.html").exists():
        state = "rebuilt" if (site_page / "index.html").stat().st_mtime >= started_wall else "unchanged"
        docs.append(f"site {display_path(site_page / 'index.html')} ({state})")
    return "  Docs: " + ("; ".join(docs) if docs else "none yet")


def failures_from(events: list[dict], exit_code: int) -> list[str]:
    """What failed, one line each: tasks that failed (with the error's first line)."""
    out = []
    for e in events:
        if e.get("event") == "task_finished" and e.get("state") == "failed":
            error = _one_line(e.get("error") or "see the log", 300)
            out.append(f"{e['dag_id']}.{e['task_id']}: {error}")
    if exit_code and not out:
        failed_dags = [
            e["dag_id"] for e in events if e.get("event") == "dag_finished" and e.get("state") != "success"
        ]
        out.append(
            f"DAG run(s) failed: {', '.join(failed_dags)}"
            if failed_dags
            else f"the DAG runner exited with {exit_code}"
        )
    return out
