"""SIGKILL of a loader at several points of a case-management load, and of a whole run.

The loader runs in a child process on a table large enough to be caught in each phase; the test
watches the warehouse's server (``pg_stat_progress_copy``, ``pg_stat_activity``) and kills the
child there. Whatever the point, raw is untouched, the batch is left ``staging``, and the next run
marks it ``abandoned`` and loads every row exactly once (as tests/integration/test_load_exports.py
does for an export file killed mid-``COPY``).
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time

import pytest

from include import db, load
from include.config import PROJECT_DIR
from tests.integration.test_load_case_management import MINIMAL_SCHEMA

ROWS = 80_000
T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)

CHILD = """
import sys
from include import load
load.load_case_management_table(sys.argv[1], sys.argv[2], "training_participants")
"""

# What the server shows while the child is in each phase (the warehouse's database only).
PHASES = {
    "copy": "select tuples_processed > 0 from pg_stat_progress_copy p "
    "join pg_database d on d.oid = p.datid where d.datname = current_database()",
    # a validation query reads the staged batch (stage.batch_N); the loader's own bookkeeping
    # (`select batch_id from audit.load_batches`) must not count, it runs before the batch exists
    "validation": "select true from pg_stat_activity where datname = current_database() "
    "and state = 'active' and pid <> pg_backend_pid() and query ~* 'stage\\W*\\.\\W*batch_[0-9]+\\M' "
    "and query !~* '^\\s*(copy|delete|insert|create|drop|alter)' "
    "and exists (select 1 from audit.load_batches where status = 'staging')",
    "publish": "select true from pg_stat_activity where datname = current_database() "
    "and state = 'active' and query ilike 'insert into raw.cm\\_training\\_participants%%'",
}


def q(url: str, query: str, params=None) -> list[tuple]:
    with db.connect(url) as conn:
        return conn.execute(query, params).fetchall()


@pytest.fixture
def big(warehouse_db, fresh_ops_database, tmp_path, monkeypatch):
    monkeypatch.setenv("DOCS_DIR", str(tmp_path / "docs"))
    with db.connect(fresh_ops_database) as conn:
        conn.execute(MINIMAL_SCHEMA.read_text())
        conn.execute(
            "insert into public.training_participants select i, 1 + i %% 50, 'P' || i, 'Name ' || i, "
            "null, null, (array['female', 'male', 'other'])[1 + i %% 3], 'worker', 1 + i %% 20, true, "
            "i %% 101, null, %s, null from generate_series(1, %s) as i",
            (T0, ROWS),
        )
    return warehouse_db, fresh_ops_database


@pytest.mark.parametrize("phase", list(PHASES))
def test_a_load_killed_at_any_point_leaves_raw_untouched_and_the_rerun_loads_once(big, phase):
    wh, ops = big
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, wh, ops],
        cwd=PROJECT_DIR,
        env={**os.environ, "PYTHONPATH": str(PROJECT_DIR)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    killed = False
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and child.poll() is None:
            seen = q(wh, PHASES[phase])
            if seen and seen[0][0]:
                child.send_signal(signal.SIGKILL)
                killed = True
                break
            time.sleep(0.005)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
    assert killed, f"never saw the {phase} phase: " + child.stderr.read().decode()[-2000:]

    assert q(wh, "select count(*) from raw.cm_training_participants") == [(0,)]
    assert q(wh, "select status from audit.load_batches") == [("staging",)]
    assert q(wh, "select count(*) from audit.watermarks") == [(0,)]
    # the killed session may take a moment to end on the server; its advisory lock goes with it
    summary = load.load_case_management_table(wh, ops, "training_participants")
    assert summary["rows_loaded"] == ROWS
    assert q(wh, "select status from audit.load_batches order by batch_id") == [("abandoned",), ("loaded",)]
    assert q(wh, "select count(*), count(distinct participant_id) from raw.cm_training_participants") == [
        (ROWS, ROWS)
    ]
    assert q(wh, "select count(*) from pg_tables where schemaname = 'stage'") == [(0,)]
    assert q(wh, "select watermark from audit.watermarks") == [(T0,)]
    assert load.load_case_management_table(wh, ops, "training_participants")["rows_loaded"] == 0


# --------------------------------------------------------------------------- whole runs


def _bw_run(env: dict[str, str]) -> subprocess.Popen:
    bw = os.path.join(os.path.dirname(sys.executable), "bw")
    return subprocess.Popen(
        [bw, "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _raw_counts(url: str) -> dict[str, int]:
    from include.contract import RAW_TABLES

    return {t: q(url, f"select count(*) from raw.{t}")[0][0] for t in RAW_TABLES}


@pytest.mark.system  # four whole `bw run`s: `make test-system`
def test_a_run_killed_during_dbt_then_two_concurrent_runs_equal_one_clean_run(pg_server_url, tmp_path):
    """``bw run`` SIGKILLed (its whole process group) while dbt builds; then two ``bw run`` at once
    on the same warehouse and Airflow home. Both end; raw holds what one clean run loads."""
    import uuid

    suffix = uuid.uuid4().hex[:8]
    killed_wh = db.with_database(pg_server_url, f"bwtest_kill_wh_{suffix}")
    clean_wh = db.with_database(pg_server_url, f"bwtest_clean_wh_{suffix}")
    ops = db.with_database(pg_server_url, f"bwtest_kill_ops_{suffix}")
    base = {
        **os.environ,
        "OPS_DATABASE_URL": ops,
        "LANDING_DIR": str(tmp_path / "landing"),
        "PSEUDONYM_KEY": "kill-test-key-not-secret-0123456789abcdef",
        "DEMO": "0",
    }

    def env(url: str, name: str) -> dict[str, str]:
        return {
            **base,
            "WAREHOUSE_URL": url,
            "AIRFLOW_HOME": str(tmp_path / name / "airflow"),
            "DOCS_DIR": str(tmp_path / name / "docs"),
            "RELEASE_DIR": str(tmp_path / name / "releases"),
        }

    try:
        bw = os.path.join(os.path.dirname(sys.executable), "bw")
        demo = subprocess.run(
            [bw, "demo-data"], env={**base, "WAREHOUSE_URL": killed_wh}, capture_output=True
        )
        assert demo.returncode == 0, demo.stderr[-3000:]
        clean = _bw_run(env(clean_wh, "clean"))
        victim = _bw_run(env(killed_wh, "killed"))
        killed = False
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and victim.poll() is None:
            try:
                # dbt has begun once a model exists (dbt's queries also carry its comment)
                dbt = q(
                    killed_wh,
                    "select exists (select 1 from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                    "where n.nspname in ('staging', 'intermediate', 'marts')) or exists (select 1 "
                    "from pg_stat_activity where datname = current_database() "
                    'and query like \'%%"app": "dbt"%%\')',
                )[0][0]
            except Exception:  # the warehouse is created by the run itself
                dbt = 0
            if dbt:
                os.killpg(victim.pid, signal.SIGKILL)
                killed = True
                break
            time.sleep(0.05)
        victim.wait()
        assert killed, victim.stdout.read()[-4000:]
        clean_out = clean.communicate(timeout=900)[0]
        assert clean.returncode == 0, clean_out[-4000:]

        runs = [_bw_run(env(killed_wh, "killed")) for _ in range(2)]
        outputs = [run.communicate(timeout=900)[0] for run in runs]
        assert [run.returncode for run in runs] == [0, 0], [out[-3000:] for out in outputs]

        assert _raw_counts(killed_wh) == _raw_counts(clean_wh)
        assert q(killed_wh, "select count(*) from pg_tables where schemaname = 'stage'") == [(0,)]
        assert q(
            killed_wh,
            "select count(*) from (select checksum from audit.load_batches where status = 'loaded' "
            "and checksum is not null group by checksum having count(*) > 1) as twice",
        ) == [(0,)]
        assert q(killed_wh, "select count(*) from marts.fct_training_participation") == q(
            clean_wh, "select count(*) from marts.fct_training_participation"
        )
    finally:
        for url in (killed_wh, clean_wh, ops):
            db.drop_database(url)
