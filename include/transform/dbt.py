"""dbt: the profile's environment from the warehouse URL, running dbt, its docs, and Cosmos' setup.

dbt reads its connection from environment variables (``dbt_project/profiles.yml``), so the same
profile serves ``make run``, tests on throwaway databases and Airflow tasks. dbt always runs as the
database role ``transformer`` (the profile's ``role``), whoever connects.

Nothing heavy is imported at module level: DAG files import this module at parse time.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from include import db
from include.config import settings

DBT_PROJECT_DIR = settings().dbt_project_dir
"""The dbt project (``DBT_PROJECT_DIR``, default ``dbt_project/``)."""
DBT_TARGET_DIR = DBT_PROJECT_DIR / "target"
MANIFEST = DBT_TARGET_DIR / "manifest.json"
DBT_EXECUTABLE = Path(sys.executable).parent / "dbt"
TRANSFORMER_ROLE = "transformer"
DAG_EXECUTION_MODE = "build"
"""How dags/transform.py runs dbt: ``build`` (one Cosmos ``dbt build`` task), ``local`` (Cosmos,
one task per model with its tests) or ``watcher`` (one build mirrored as tasks; needs a real
scheduler and triggerer: it deadlocks under ``airflow dags test``). Measured in docs/TRANSFORM.md."""


def dbt_env(warehouse_url: str) -> dict[str, str]:
    """The environment variables ``profiles.yml`` reads, for this warehouse."""
    from include import warehouse

    try:  # the pseudonym key, as session settings (PGOPTIONS); checked against the warehouse's
        key = warehouse.key_env(url=warehouse_url)
    except warehouse.PseudonymKeyMissing:  # parse needs none; a build fails at its first pseudonym
        key = {}
    p = db.parts(warehouse_url)
    return {
        **key,
        "WAREHOUSE_HOST": p.get("host", "127.0.0.1"),
        "WAREHOUSE_PORT": p.get("port", "5432"),
        "WAREHOUSE_USER": p.get("user", "postgres"),
        "WAREHOUSE_PASSWORD": p.get("password", ""),
        "WAREHOUSE_DBNAME": p.get("dbname", "postgres"),
        "DBT_PROFILES_DIR": str(DBT_PROJECT_DIR),
        "DBT_PROJECT_DIR": str(DBT_PROJECT_DIR),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
        "DO_NOT_TRACK": "1",
    }


@dataclass(frozen=True)
class DbtRun:
    """What one dbt invocation did."""

    args: list[str]
    returncode: int
    output: str
    wall_seconds: float
    target_path: Path

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def run_results(self) -> dict:
        """dbt's ``run_results.json`` of this invocation (empty if dbt wrote none)."""
        path = self.target_path / "run_results.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def database_seconds(self) -> float:
        """Time dbt spent executing nodes (queries and tests), summed over nodes.

        With several threads this sum can exceed the wall time; divide by the thread count for an
        estimate of the wall time spent waiting on the database.
        """
        return sum(r.get("execution_time", 0.0) for r in self.run_results().get("results", []))


class DbtError(RuntimeError):
    """dbt exited with an error; the message carries the end of its output."""


def run_dbt(
    args: list[str],
    warehouse_url: str,
    target_path: Path | str | None = None,
    check: bool = True,
    threads: int | None = None,
    project_dir: Path | str | None = None,
) -> DbtRun:
    """Run the dbt CLI on the project against ``warehouse_url``, in a subprocess.

    A subprocess, not dbtRunner in-process: dbt keeps global state (adapters, logging, flags)
    between in-process invocations and reconfigures the caller's logging; a fresh process costs
    ~1.5 s more per call (measured in docs/TRANSFORM.md) and isolates each run.

    ``target_path`` keeps concurrent runs (tests, Airflow) from clobbering ``dbt_project/target``.
    """
    project = Path(project_dir) if project_dir else DBT_PROJECT_DIR
    target = Path(target_path) if target_path else project / "target"
    env = {**os.environ, **dbt_env(warehouse_url), "DBT_TARGET_PATH": str(target)}
    env["DBT_PROJECT_DIR"] = env["DBT_PROFILES_DIR"] = str(project)
    if threads:
        env["DBT_THREADS"] = str(threads)
    env.setdefault("DBT_LOG_PATH", str(target / "logs"))
    command = [str(DBT_EXECUTABLE), "--no-use-colors", *args]
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, check=False)
    run = DbtRun(args, proc.returncode, proc.stdout + proc.stderr, time.perf_counter() - started, target)
    if check and not run.ok:
        raise DbtError(f"dbt {' '.join(args)} failed (exit {proc.returncode}):\n{run.output[-6000:]}")
    return run


def build(warehouse_url: str, target_path: Path | str | None = None) -> DbtRun:
    """``dbt build``: seeds, models, snapshots and every test, in dependency order."""
    return run_dbt(["build"], warehouse_url, target_path)


def generate_docs(warehouse_url: str, out_dir: Path | str | None = None) -> Path:
    """Write dbt's documentation as one static HTML page; return its path.

    ``dbt docs generate --static`` embeds the manifest and catalog in ``static_index.html``, so
    the page opens from disk with no server. Default: ``DOCS_DIR/dbt/index.html``.
    """
    out = Path(out_dir) if out_dir else settings().docs_dir / "dbt"
    target = out / "_target"
    run_dbt(["docs", "generate", "--static"], warehouse_url, target_path=target)
    out.mkdir(parents=True, exist_ok=True)
    page = out / "index.html"
    shutil.copyfile(target / "static_index.html", page)
    shutil.rmtree(target, ignore_errors=True)
    return page


DOCS_FINGERPRINT = ".fingerprint"
"""Beside the dbt docs page: the fingerprint of what the page was generated from."""


def generate_docs_if_changed(warehouse_url: str, out_dir: Path | str | None = None) -> tuple[Path, bool]:
    """Regenerate the dbt docs page only when the dbt project or the warehouse's schema changed.

    The page shows the project (models, tests, descriptions, lineage) and the catalogue (tables,
    columns, types, comments), not data, so the same project on the same schema gives the same
    page (~7 s saved per run). Returns the page and whether it was written.
    """
    out = Path(out_dir) if out_dir else settings().docs_dir / "dbt"
    page, stamp = out / "index.html", out / DOCS_FINGERPRINT
    fingerprint = docs_fingerprint(warehouse_url)
    if page.exists() and stamp.exists() and stamp.read_text().strip() == fingerprint:
        return page, False
    generate_docs(warehouse_url, out)
    stamp.write_text(fingerprint + "\n")
    return page, True


_PROJECT_SKIP = {"target", "logs", "dbt_packages", "__pycache__"}


def project_hash(project_dir: Path | str | None = None) -> str:
    """sha256 of the dbt project's files (names and bytes; ``target/``, ``logs/`` left out)."""
    root = Path(project_dir) if project_dir else DBT_PROJECT_DIR
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_dir() or any(part in _PROJECT_SKIP or part.startswith(".") for part in rel.parts):
            continue
        digest.update(str(rel).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def schema_hash(warehouse_url: str) -> str:
    """sha256 of the warehouse's tables, views and columns (types, comments) outside the system,
    ``stage`` (per-batch tables) and raw's per-batch partitions: what dbt's catalogue shows."""
    query = """
        select n.nspname, c.relname, c.relkind, a.attnum, a.attname,
               format_type(a.atttypid, a.atttypmod), col_description(c.oid, a.attnum),
               obj_description(c.oid, 'pg_class')
        from pg_class c
        join pg_namespace n on n.oid = c.relnamespace
        join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
        where c.relkind in ('r', 'v', 'm', 'p', 'f') and not c.relispartition
          and n.nspname not in ('information_schema', 'stage') and n.nspname not like 'pg\\_%'
        order by 1, 2, 4
    """
    digest = hashlib.sha256()
    with db.connect(warehouse_url) as conn:
        for row in conn.execute(query):
            digest.update(repr(row).encode())
    return digest.hexdigest()


def docs_fingerprint(warehouse_url: str) -> str:
    return f"{project_hash()}:{schema_hash(warehouse_url)}"


# --------------------------------------------------------------------------- what the transform did

TRANSFORM_RUNS_DDL = """
create table if not exists audit.transform_runs (
    run_id        bigserial primary key,
    dag_run_id    text,
    started_at    timestamptz not null default clock_timestamp(),
    finished_at   timestamptz,
    status        text not null,          -- 'running', 'success', 'failed'
    inputs_as_of  timestamptz not null,   -- batches loaded before this instant are in the build
    project_hash  text not null,          -- include.transform.dbt.project_hash() of the project built
    full_refresh  boolean not null default false,
    summary       jsonb,                  -- dbt's results: counts per kind and status, failures
    message       text
)
"""
"""One row per transform (dbt build): what ``bw run`` reads to decide whether anything changed
since the last successful one, and to print what dbt did."""


def ensure_transform_runs(warehouse_url: str) -> None:
    with db.connect(warehouse_url, autocommit=True) as conn:
        conn.execute("create schema if not exists audit")
        conn.execute(TRANSFORM_RUNS_DDL)


def start_transform_run(warehouse_url: str, dag_run_id: str | None, full_refresh: bool) -> int:
    ensure_transform_runs(warehouse_url)
    with db.connect(warehouse_url, autocommit=True) as conn:
        return conn.execute(
            "insert into audit.transform_runs (dag_run_id, status, inputs_as_of, project_hash, full_refresh) "
            "values (%s, 'running', clock_timestamp(), %s, %s) returning run_id",
            (dag_run_id, project_hash(), full_refresh),
        ).fetchone()[0]


def finish_transform_run(
    warehouse_url: str, run_id: int, ok: bool, summary: dict | None, message: str | None = None
) -> None:
    with db.connect(warehouse_url, autocommit=True) as conn:
        conn.execute(
            "update audit.transform_runs set status = %s, finished_at = clock_timestamp(), "
            "summary = %s::jsonb, message = %s where run_id = %s",
            ("success" if ok else "failed", json.dumps(summary or {}), message, run_id),
        )


def last_build_failure(warehouse_url: str) -> str | None:
    """The message of the last finished transform if it failed (None if it succeeded, or none ran)."""
    ensure_transform_runs(warehouse_url)
    with db.connect(warehouse_url) as conn:
        row = conn.execute(
            "select status, coalesce(message, 'dbt build failed') from audit.transform_runs "
            "where status in ('success', 'failed') order by run_id desc limit 1"
        ).fetchone()
    return row[1] if row and row[0] == "failed" else None


@dataclass(frozen=True)
class Decision:
    """Whether the transform has anything to do, and why (printed by ``bw run``)."""

    needed: bool
    reason: str


def built_by_this_project(warehouse_url: str) -> bool:
    """Whether the last successful build of this warehouse was made by the current dbt project."""
    ensure_transform_runs(warehouse_url)
    with db.connect(warehouse_url) as conn:
        last = conn.execute(
            "select project_hash from audit.transform_runs where status = 'success' "
            "order by run_id desc limit 1"
        ).fetchone()
    return last is not None and last[0] == project_hash()


def needs_transform(warehouse_url: str, full_refresh: bool = False) -> Decision:
    """Build when asked to (full refresh), when no build ever succeeded, when a batch loaded rows
    after the inputs of the last successful build were taken, or when the dbt project changed.

    A batch "loaded rows" when ``audit.load_batches`` has it ``loaded`` with ``rows_loaded > 0``;
    its ``finished_at`` is when it was published. Nothing else (Airflow's runs included) decides.
    """
    if full_refresh:
        return Decision(True, "full refresh requested")
    ensure_transform_runs(warehouse_url)
    with db.connect(warehouse_url) as conn:
        last = conn.execute(
            "select inputs_as_of, project_hash from audit.transform_runs where status = 'success' "
            "order by run_id desc limit 1"
        ).fetchone()
        if last is None:
            return Decision(True, "no transform has succeeded on this warehouse yet")
        inputs_as_of, built_hash = last
        batches, rows = conn.execute(
            "select count(*), coalesce(sum(rows_loaded), 0) from audit.load_batches "
            "where status = 'loaded' and rows_loaded > 0 and finished_at >= %s",
            (inputs_as_of,),
        ).fetchone()
    if batches:
        return Decision(True, f"{batches} new batch(es), {rows:,} rows loaded since the last transform")
    if built_hash != project_hash():
        return Decision(True, "the dbt project changed since the last transform")
    return Decision(False, "nothing changed since the last transform (no rows loaded, same dbt project)")


def summarise_results(results) -> dict:
    """Counts per resource type and status, and the nodes that failed or warned, from dbt's
    results (``NodeResult`` objects of dbtRunner, or ``run_results.json`` dicts)."""
    counts: dict[str, dict[str, int]] = {}
    failures, warnings = [], []
    for r in results:
        if isinstance(r, dict):
            uid, status, message = r.get("unique_id", ""), str(r.get("status")), r.get("message")
            kind = uid.split(".", 1)[0]
        else:
            uid, status, message = r.node.unique_id, str(r.status), r.message
            kind = str(r.node.resource_type)
        status = status.rsplit(".", 1)[-1].lower()
        kind = kind.rsplit(".", 1)[-1].lower()
        counts.setdefault(kind, {}).setdefault(status, 0)
        counts[kind][status] += 1
        entry = {
            "node": _node_name(uid, kind),
            "kind": kind,
            "status": status,
            "message": _first_line(message),
        }
        if status in ("error", "fail", "runtime error"):
            failures.append(entry)
        elif status == "warn":
            warnings.append(entry)
    return {"counts": counts, "failures": failures, "warnings": warnings}


def _node_name(unique_id: str, kind: str) -> str:
    """``test.<project>.<name>.<hash>`` → name; ``unit_test.<project>.<model>.<test>`` → model.test."""
    parts = unique_id.split(".")
    return parts[2] if kind == "test" and len(parts) > 2 else ".".join(parts[2:]) or unique_id


def _first_line(text, limit: int = 300) -> str:
    line = next((t.strip() for t in str(text or "").splitlines() if t.strip()), "")
    return line[:limit]


_TRANSIENT = re.compile(
    r"could not connect|connection refused|connection timed out|server closed the connection|"
    r"terminating connection|connection to server .* failed|the database system is (starting|shutting)|"
    r"deadlock detected|could not serialize access|too many clients",
    re.IGNORECASE,
)


def is_transient(message: str) -> bool:
    """Whether a dbt error reads like a fault that a retry can heal (the database away or busy),
    rather than a failing test or a broken model, which fail the same way every time."""
    return bool(_TRANSIENT.search(message or ""))


def parse_manifest(warehouse_url: str | None = None) -> Path:
    """``dbt parse`` into ``dbt_project/target``: the manifest Cosmos renders the DAG from.

    Parsing needs no database connection, only the profile's shape.
    """
    run_dbt(["parse"], warehouse_url or "postgresql://postgres@127.0.0.1:5432/postgres")
    return MANIFEST


# --------------------------------------------------------------------------- Cosmos


def cosmos_profile_mapping():
    """dbt's profile from the Airflow connection ``warehouse``, running as role ``transformer``.

    Cosmos' own Postgres mapping insists on a password; the local warehouse uses trust
    authentication, so this one accepts a connection without one.
    """
    from cosmos.profiles import PostgresUserPasswordProfileMapping

    class WarehouseProfileMapping(PostgresUserPasswordProfileMapping):
        required_fields = ["host", "user", "dbname"]

        @property
        def profile(self):
            profile = super().profile
            env_name = self.get_env_var_name("password")
            profile["password"] = f"{{{{ env_var('{env_name}', '') }}}}"
            return profile

        @property
        def env_vars(self) -> dict[str, str]:
            from include import warehouse
            from include.orchestration import connections

            env = {self.get_env_var_name("password"): str(self.get_dbt_value("password") or "")}
            env.update(warehouse.key_env(url=connections.warehouse_url()))  # pseudonym key (PGOPTIONS)
            return {**env, "DBT_SEND_ANONYMOUS_USAGE_STATS": "False", "DO_NOT_TRACK": "1"}

    from include.orchestration.connections import WAREHOUSE_CONN_ID

    return WarehouseProfileMapping(
        conn_id=WAREHOUSE_CONN_ID,
        profile_args={"schema": "marts", "role": TRANSFORMER_ROLE, "threads": 4},
    )


def cosmos_profile_config():
    from cosmos import ProfileConfig

    return ProfileConfig(
        profile_name="betterwork", target_name="warehouse", profile_mapping=cosmos_profile_mapping()
    )


def cosmos_dbt(task_id: str = "dbt", mode: str = DAG_EXECUTION_MODE):
    """The dbt project as Airflow work (call inside a DAG): a task or a task group.

    ``build``: one task running ``dbt build`` (seeds, models, snapshot, every test). ``local``:
    one task per model followed by its tests, one per seed and snapshot. ``watcher``: one
    ``dbt build`` whose nodes are mirrored as sensor tasks. The per-node modes are rendered from
    the manifest that :func:`parse_manifest` writes, so parsing the DAG never runs dbt (it does
    once, if the manifest is missing).
    """
    from cosmos.constants import InvocationMode

    if mode == "build":
        return dbt_build_operator_class()(
            task_id=task_id,
            project_dir=str(DBT_PROJECT_DIR),
            profile_config=cosmos_profile_config(),
            # dbt in-process (dbtRunner): the same venv as Airflow, no interpreter start.
            invocation_mode=InvocationMode.DBT_RUNNER,
            install_deps=False,
            # No Cosmos Assets per model (OpenLineage URIs): the DAG's one outlet is `marts`, set
            # by `marts_built` after a successful build; and no lineage parsing after each run.
            emit_datasets=False,
            # `bw run --full-refresh` (or a manual run with {"full_refresh": true}) rebuilds
            # incremental models from scratch; Cosmos reads the rendered string as a boolean.
            full_refresh="{{ (dag_run.conf or {}).get('full_refresh', False) }}",
        )

    from cosmos import DbtTaskGroup, ExecutionConfig, ProjectConfig, RenderConfig
    from cosmos.constants import ExecutionMode, LoadMode, TestBehavior

    if not MANIFEST.exists():
        parse_manifest()
    execution_mode = {"watcher": ExecutionMode.WATCHER, "local": ExecutionMode.LOCAL}[mode]
    return DbtTaskGroup(
        group_id=task_id,
        project_config=ProjectConfig(dbt_project_path=DBT_PROJECT_DIR, manifest_path=MANIFEST),
        profile_config=cosmos_profile_config(),
        execution_config=ExecutionConfig(
            execution_mode=execution_mode, invocation_mode=InvocationMode.DBT_RUNNER
        ),
        render_config=RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            test_behavior=TestBehavior.AFTER_EACH,
            # relationships tests need both models built: run them after both, as their own tasks
            should_detach_multiple_parents_tests=True,
        ),
        operator_args={"install_deps": False},
    )


@functools.cache
def dbt_build_operator_class():
    """Cosmos' ``dbt build`` operator that fails fast and records what it did.

    - A failing test or a broken model fails the same way on every try: the task raises
      ``AirflowFailException`` (no retry), naming the failing nodes. Only errors that read like a
      transient fault (the database away or busy, :func:`is_transient`) stay retryable.
    - Each build is a row of ``audit.transform_runs`` (inputs' time, project hash, dbt's counts and
      failures), which ``bw run`` reads to skip a transform when nothing changed and to print
      what dbt did.
    """
    from airflow.sdk.exceptions import AirflowFailException
    from cosmos.exceptions import CosmosDbtRunError
    from cosmos.operators.local import DbtBuildLocalOperator

    class DbtBuildFailFast(DbtBuildLocalOperator):
        _summary: dict | None = None

        def handle_exception_dbt_runner(self, result) -> None:
            executed = getattr(result, "result", None)
            self._summary = summarise_results(getattr(executed, "results", None) or [])
            if result.success:
                return
            if result.exception is not None:
                message = f"dbt build could not run: {_first_line(result.exception, 1000)}"
                if is_transient(str(result.exception)):
                    raise CosmosDbtRunError(message)
                raise AirflowFailException(message)
            failures = self._summary["failures"]
            named = "; ".join(f"{f['kind']} {f['node']} {f['status']}: {f['message']}" for f in failures[:5])
            more = f" (and {len(failures) - 5} more)" if len(failures) > 5 else ""
            message = f"dbt build failed, {len(failures)} node(s): {named}{more}"
            if failures and all(is_transient(f["message"]) for f in failures):
                raise CosmosDbtRunError(message)
            raise AirflowFailException(message)

        def execute(self, context, **kwargs):
            from include.orchestration import connections

            url = connections.warehouse_url()
            full_refresh = str(self.full_refresh).strip().lower() in ("true", "1", "yes")
            if not full_refresh and not built_by_this_project(url):
                # Incremental models made by other code (an upgrade, an edited model) would keep
                # rows of the old logic or lack new columns: rebuild them whole, here as on the
                # team server.
                full_refresh = self.full_refresh = True
            run_id = start_transform_run(url, context.get("run_id"), full_refresh)
            try:
                super().execute(context, **kwargs)
            except BaseException as err:
                finish_transform_run(url, run_id, False, self._summary, _first_line(err, 2000))
                raise
            finish_transform_run(url, run_id, True, self._summary)
            return {"counts": (self._summary or {}).get("counts", {}), "full_refresh": full_refresh}

    DbtBuildFailFast.__qualname__ = "DbtBuildFailFast"
    return DbtBuildFailFast
