"""``bw``: the commands behind the Makefile.

bw run          build the warehouse: resolve it, demo sources (DEMO=1), run the DAGs in order
                (-v: Airflow's and dbt's logs live; --full-refresh: dbt --full-refresh)
bw stop         stop the embedded PostgreSQL, if the project started one
bw demo-data    write the demo sources at SCALE (default 1)
bw airflow      Airflow as on the team server (EXECUTOR=local|celery), stopped with Ctrl-C
bw warehouse    print which warehouse the pipeline would use and how to reach it
bw rotate-key   make the configured pseudonym key the warehouse's (changes every pseudonym)
bw site         serve the static site (SITE_DIR) on 127.0.0.1 for a look (--build: rebuild it first)
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from include import db, warehouse
from include.config import settings
from include.orchestration import airflow_env, run_dags

log = logging.getLogger("bw")


def _prepare() -> tuple[warehouse.Warehouse, dict[str, str]]:
    """Resolve the warehouse and the ops database, bootstrap schemas; return Airflow's environment."""
    cfg = settings()
    wh = warehouse.resolve(cfg)
    log.info("warehouse: %s (%s)", _redacted(wh.url), wh.kind)
    db.ensure_database(wh.ops_url)
    warehouse.bootstrap(wh.url, cfg)
    return wh, airflow_env.environment(cfg, wh.url, wh.ops_url)


def _redacted(url: str) -> str:
    return db.redact(url)


def _airflow(args: list[str], env: dict[str, str], stdout=None) -> int:
    """Run an ``airflow`` sub-command of this virtualenv; its output streams to ours (or ``stdout``)."""
    airflow = str(Path(sys.executable).with_name("airflow"))
    stderr = subprocess.STDOUT if stdout is not None else None
    return subprocess.run([airflow, *args], env=env, stdout=stdout, stderr=stderr).returncode


def _migration_stamp(env: dict[str, str]) -> Path:
    # Not `import airflow` here: it would configure Airflow with this process's environment.
    airflow_version = importlib.metadata.version("apache-airflow")
    return Path(env["AIRFLOW_HOME"]) / f".migrated-{airflow_version}"


def _needs_migration(env: dict[str, str]) -> bool:
    return not _migration_stamp(env).exists()


def _migrate(env: dict[str, str], stdout=None) -> None:
    """Create or upgrade Airflow's metadata database, once per Airflow version (it takes ~5 s)."""
    stamp = _migration_stamp(env)
    if stamp.exists():
        return
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    if _airflow(["db", "migrate"], env, stdout=stdout) != 0:
        raise SystemExit("airflow db migrate failed")
    stamp.touch()


def cmd_run(args: argparse.Namespace) -> int:
    """The pipeline with a console for people (include/orchestration/console.py); full logs in a file."""
    from include.orchestration import console as con

    started, started_wall = time.monotonic(), time.time()
    cfg = settings()
    log_path = con.new_log_path(cfg.log_dir)
    log_file = open(log_path, "ab", buffering=0)  # noqa: SIM115 (closed below, shared with children)
    _log_to(log_path, verbose=args.verbose)
    out = con.Console()
    out.start()
    held = contextlib.ExitStack()  # the run's locks (_one_run_at_a_time), released at the end
    try:
        return _run(args, cfg, out, log_file, log_path, started, started_wall, held)
    except Exception as err:  # before or around the DAGs: say what, where the details are
        log.info("bw run failed", exc_info=True)  # the traceback to the log file only
        out.line("FAILED:")
        out.line(f"  {type(err).__name__}: {' '.join(str(err).split())[:300]}")
        out.line(f"bw run FAILED after {time.monotonic() - started:.1f} s (exit 1); details in {log_path}")
        return 1
    finally:
        held.close()
        out.stop()
        log_file.close()


def _one_run_at_a_time(url: str, airflow_home: Path, out, held: contextlib.ExitStack) -> None:
    """Hold two locks until the run ends, waiting for another run that holds them.

    Two runs on one warehouse would build the same dbt schemas at once, and two runs from one
    folder would share Airflow's SQLite metadata: the second run waits for the first, then finds
    its work done (loads are idempotent). A PostgreSQL advisory lock on a session of its own covers
    the warehouse, a file lock the Airflow home; the operating system and the server release both
    if the process dies, so a killed run never leaves a stale lock.
    """
    import fcntl

    airflow_home.mkdir(parents=True, exist_ok=True)
    lock_file = held.enter_context(open(airflow_home / "bw-run.lock", "w"))  # noqa: SIM115
    conn = held.enter_context(db.connect(url, autocommit=True))
    key = "select pg_{}advisory_lock(hashtext('betterwork.bw_run'))"
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        free = conn.execute(key.format("try_")).fetchone()[0]
    except BlockingIOError:
        free = False
    if not free:
        out.line("another bw run is using this warehouse or folder: waiting for it to end")
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        conn.execute(key.format(""))


def _log_to(log_path: Path, verbose: bool) -> None:
    """bw's own logging: everything to the run's log file; warnings (everything with -v) on screen."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    to_file = logging.FileHandler(log_path)
    to_file.setFormatter(fmt)
    screen = logging.StreamHandler(sys.stderr)
    screen.setFormatter(fmt)
    screen.setLevel(logging.INFO if verbose else logging.WARNING)
    root.addHandler(to_file)
    root.addHandler(screen)
    root.setLevel(logging.INFO)


def _run(args, cfg, out, log_file, log_path: Path, started, started_wall, held: contextlib.ExitStack) -> int:
    from include.orchestration import console as con
    from include.transform import dbt as transform

    out.line(
        f"bw run: full log in {con.display_path(log_path)}" + (" (shown live: -v)" if args.verbose else "")
    )
    with out.step("warehouse") as step:
        wh, env = _prepare()
        _one_run_at_a_time(wh.url, Path(env["AIRFLOW_HOME"]), out, held)
        transform.ensure_transform_runs(wh.url)
        since = con.db_now(wh.url)
        step["note"] = f"{wh.kind}, database {db.parts(wh.url).get('dbname', '?')}"
    if cfg.demo:
        from include import demo

        with out.step("demo sources") as step:
            summary = demo.generate(cfg.landing_dir, wh.ops_url, scale=cfg.demo_scale, seed=cfg.demo_seed)
            log.info("demo sources: %s", summary)
            step["note"] = _demo_note(summary, cfg.demo_scale)
    else:
        log.info("DEMO=0: using the sources as they are, generating nothing")
    if _needs_migration(env):
        with out.step("airflow metadata database"):
            _migrate(env, stdout=log_file)
    # All DAGs in one process (include/orchestration/run_dags.py): `airflow dags test` each, without paying
    # Airflow's start-up four times.
    log.info("running the pipeline: %s", ", ".join(run_dags.PIPELINE))
    cmd = [sys.executable, "-m", "include.orchestration.run_dags", "--pipeline"]
    if args.full_refresh:
        cmd.append("--full-refresh")
    code, events = con.run_pipeline_process(cmd, env, log_file, out, verbose=args.verbose)
    failures = con.failures_from(events, code)
    psql = wh.psql_command().replace(f'"{wh.url}"', f'"{con.without_password(wh.url)}"')
    lines = con.summary_lines(
        url=wh.url,
        since=since,
        started_wall=started_wall,
        events=events,
        cfg=cfg,
        warehouse_kind=wh.kind,
        psql=psql,
        log_path=log_path,
        elapsed=time.monotonic() - started,
        failures=failures,
        embedded=wh.kind == "embedded",
    )
    for text in lines:
        out.line(text)
    return 1 if (code != 0 or failures) else 0


def _demo_note(summary: dict, scale: int) -> str:
    exports, ops = summary.get("assessment_exports", {}), summary.get("case_management", {})
    if "skipped" in exports and "skipped" in ops:
        return f"scale {scale}: already in place"
    parts = []
    if "skipped" not in exports:
        parts.append(f"{len(exports.get('files', []))} export files written")
    if "skipped" not in ops:
        parts.append("case-management database filled")
    return f"scale {scale}: " + ", ".join(parts)


def cmd_stop(_args: argparse.Namespace) -> int:
    stopped = warehouse.stop_embedded()
    print("embedded PostgreSQL stopped" if stopped else "no embedded PostgreSQL was running")
    return 0


def cmd_warehouse(_args: argparse.Namespace) -> int:
    wh = warehouse.resolve()
    print(f"Warehouse ({wh.kind}): {_redacted(wh.url)}")
    print(f"Query it:  {wh.psql_command()}")
    return 0


def cmd_demo_data(args: argparse.Namespace) -> int:
    from include import demo

    cfg = settings()
    wh = warehouse.resolve(cfg)
    db.ensure_database(wh.ops_url)
    summary = demo.generate(
        cfg.landing_dir,
        wh.ops_url,
        scale=args.scale or cfg.demo_scale,
        seed=cfg.demo_seed,
        only_if_empty=False,
    )
    print(summary)
    return 0


def cmd_airflow(_args: argparse.Namespace) -> int:
    """Airflow as on the team server (include/orchestration/airflow_server.py), stopped whole on Ctrl-C.

    api-server, scheduler, dag-processor and triggerer as separate processes on a PostgreSQL
    metadata database; ``EXECUTOR=celery`` adds Celery workers on ``REDIS_URL``.
    """
    from include.orchestration import airflow_server

    cfg = settings()
    wh, _env = _prepare()
    env = airflow_env.server_environment(cfg, wh.url, wh.ops_url)
    if cfg.executor == "celery" and not airflow_server.redis_answers(cfg.redis_url):
        raise SystemExit(
            f"EXECUTOR=celery: no Redis answers at {cfg.redis_url}. Start one (e.g. "
            "`redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no`) "
            "or set REDIS_URL."
        )
    stack = airflow_server.Stack(env, celery_workers=cfg.celery_workers if cfg.executor == "celery" else 0)
    started = time.monotonic()
    print(f"Airflow metadata: {_redacted(airflow_env.metadata_url(cfg, wh.url))}; migrating…", flush=True)
    airflow_server.migrate(env)

    def stop(*_):
        raise KeyboardInterrupt

    # Explicit handlers: a shell's background job inherits SIGINT ignored, and Ctrl-C must still stop us.
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        stack.start()
        print(
            f"Starting {', '.join(stack.processes)} ({env['AIRFLOW__CORE__EXECUTOR']});"
            f" logs in {stack.log_dir}"
        )
        stack.wait_healthy()
        print(f"Airflow is up in {time.monotonic() - started:.0f} s: {stack.url}")
        print(f"  user admin, password in {stack.home / 'simple_auth_manager_passwords.json.generated'}")
        print("  DAGs start paused: unpause them in the UI. Ctrl-C stops every Airflow process.")
        while not (dead := stack.dead()):
            time.sleep(1)
        print(f"Airflow component(s) exited: {', '.join(dead)}; see {stack.log_dir}; stopping the rest.")
        return 1
    except KeyboardInterrupt:
        return 0
    except (RuntimeError, TimeoutError) as err:
        print(err, file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stack.stop()
        print("Airflow stopped.")


def cmd_rotate_key(args: argparse.Namespace) -> int:
    """Deliberately change the pseudonym key: every pseudonym changes at the next build."""
    wh = warehouse.resolve()
    old, new = warehouse.rotate_key(wh.url, generate=args.generate)
    print(f"pseudonym key of {db.redact(wh.url)}: {old} -> {new}; run `make run` to rebuild every table")
    return 0


def cmd_site(args: argparse.Namespace) -> int:
    """Serve SITE_DIR on 127.0.0.1 (the site needs no server; this is for a look in a browser)."""
    import functools
    import http.server

    cfg = settings()
    if args.build or not (cfg.site_dir / "index.html").exists():
        from include.serve.site import builder

        result = builder.build(warehouse.resolve(cfg).url)
        print(f"site: {result.pages} pages written in {result.seconds:.1f} s")
    # Serve the parent too, so that the site's links to DOCS_DIR (dbt docs, GX Data Docs) work.
    root = Path(os.path.commonpath([cfg.site_dir, cfg.docs_dir]))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    with http.server.ThreadingHTTPServer(("127.0.0.1", args.port), handler) as server:
        page = f"http://127.0.0.1:{args.port}/{cfg.site_dir.relative_to(root)}/index.html"
        print(f"Site: {page}  (Ctrl-C stops)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(
        prog="bw", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="build the warehouse")
    run_parser.add_argument("-v", "--verbose", action="store_true", help="show Airflow's and dbt's logs live")
    run_parser.add_argument(
        "--full-refresh",
        action="store_true",
        help="rebuild every dbt model from scratch (dbt --full-refresh)",
    )
    run_parser.set_defaults(func=cmd_run)
    sub.add_parser("stop", help="stop the embedded PostgreSQL").set_defaults(func=cmd_stop)
    sub.add_parser("warehouse", help="print the warehouse in use").set_defaults(func=cmd_warehouse)
    demo_parser = sub.add_parser("demo-data", help="write demo sources")
    demo_parser.add_argument("--scale", type=int, default=None)
    demo_parser.set_defaults(func=cmd_demo_data)
    sub.add_parser("airflow", help="Airflow as on the team server, on 127.0.0.1").set_defaults(
        func=cmd_airflow
    )
    rotate = sub.add_parser("rotate-key", help="install the configured pseudonym key (new pseudonyms)")
    rotate.add_argument("--generate", action="store_true", help="write a new key file if none exists")
    rotate.set_defaults(func=cmd_rotate_key)
    site_parser = sub.add_parser("site", help="serve the static site on 127.0.0.1")
    site_parser.add_argument("--port", type=int, default=8000)
    site_parser.add_argument("--build", action="store_true", help="rebuild the site from the warehouse first")
    site_parser.set_defaults(func=cmd_site)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
