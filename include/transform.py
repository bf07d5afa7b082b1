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


def dbt_env(warehouse_url: str) -> dict[str, str]:
    """The environment variables ``profiles.yml`` reads, for this warehouse."""
    p = db.parts(warehouse_url)
    return {
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
) -> DbtRun:
    """Run the dbt CLI on the project against ``warehouse_url``, in a subprocess.

    A subprocess, not dbtRunner in-process: dbt keeps global state (adapters, logging, flags)
    between in-process invocations and reconfigures the caller's logging; a fresh process costs
    ~1.5 s more per call (measured in docs/TRANSFORM.md) and isolates each run.

    ``target_path`` keeps concurrent runs (tests, Airflow) from clobbering ``dbt_project/target``.
    """
    target = Path(target_path) if target_path else DBT_TARGET_DIR
    env = {**os.environ, **dbt_env(warehouse_url), "DBT_TARGET_PATH": str(target)}
    if threads:
        env["DBT_THREADS"] = str(threads)
    env.setdefault("DBT_LOG_PATH", str(target / "logs"))
    command = [str(DBT_EXECUTABLE), "--no-use-colors", *args]
    started = time.perf_counter()
    proc = subprocess.run(
        command, cwd=DBT_PROJECT_DIR, env=env, capture_output=True, text=True, check=False
    )
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


def cosmos_project_config():
    """Cosmos' view of the project: its folder and the manifest ``dbt parse`` writes."""
    from cosmos import ProjectConfig

    return ProjectConfig(dbt_project_path=DBT_PROJECT_DIR, manifest_path=MANIFEST)


def cosmos_profile_config():
    """The profile for Cosmos: ``profiles.yml`` with its variables from the ``warehouse`` connection.

    The profile file (not a ProfileMapping) so that dbt runs as role ``transformer`` exactly as
    outside Airflow; the variables are set by :func:`cosmos_env`.
    """
    from cosmos import ProfileConfig

    return ProfileConfig(
        profile_name="betterwork",
        target_name="warehouse",
        profiles_yml_filepath=DBT_PROJECT_DIR / "profiles.yml",
    )


def cosmos_env() -> dict[str, str]:
    """Environment for dbt in Cosmos tasks, from ``AIRFLOW_CONN_WAREHOUSE``."""
    from include import connections

    env = dbt_env(connections.warehouse_url())
    env.pop("DBT_PROJECT_DIR")
    return env
