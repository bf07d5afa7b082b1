"""dbt: the profile's environment from the warehouse URL, running dbt, its docs, and Cosmos' setup.

dbt reads its connection from environment variables (``dbt_project/profiles.yml``), so the same
profile serves ``make run``, tests on throwaway databases and Airflow tasks. dbt always runs as the
database role ``transformer`` (the profile's ``role``), whoever connects.

Nothing heavy is imported at module level: DAG files import this module at parse time.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from include import db
from include.config import PROJECT_DIR, settings

DBT_PROJECT_DIR = PROJECT_DIR / "dbt_project"
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
            from include import connections, warehouse

            env = {self.get_env_var_name("password"): str(self.get_dbt_value("password") or "")}
            env.update(warehouse.key_env(url=connections.warehouse_url()))  # pseudonym key (PGOPTIONS)
            return {**env, "DBT_SEND_ANONYMOUS_USAGE_STATS": "False", "DO_NOT_TRACK": "1"}

    from include.connections import WAREHOUSE_CONN_ID

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
        from cosmos.operators.local import DbtBuildLocalOperator

        return DbtBuildLocalOperator(
            task_id=task_id,
            project_dir=str(DBT_PROJECT_DIR),
            profile_config=cosmos_profile_config(),
            # dbt in-process (dbtRunner): the same venv as Airflow, no interpreter start.
            invocation_mode=InvocationMode.DBT_RUNNER,
            install_deps=False,
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
