"""``bw``: the commands behind the Makefile.

bw run          build the warehouse: resolve it, demo sources (DEMO=1), run the DAGs in order
bw stop         stop the embedded PostgreSQL, if the project started one
bw demo-data    write the demo sources at SCALE (default 1)
bw airflow      Airflow as on the team server (EXECUTOR=local|celery), stopped with Ctrl-C
bw warehouse    print which warehouse the pipeline would use and how to reach it
bw bench-load   loader benchmark (bare COPY and pandas.to_sql for comparison)
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

from include import airflow_env, db, warehouse
from include.config import settings

log = logging.getLogger("bw")

PIPELINE = ("extract_case_management", "extract_assessments", "transform", "research_release")
"""The DAGs ``bw run`` runs, in dependency order: the registry before the exports (GX checks
export factories against it), both raw sources before the transform, the marts before a release."""


def _prepare() -> tuple[warehouse.Warehouse, dict[str, str]]:
    """Resolve the warehouse and the ops database, bootstrap schemas; return Airflow's environment."""
    cfg = settings()
    wh = warehouse.resolve(cfg)
    log.info("warehouse: %s (%s)", _redacted(wh.url), wh.kind)
    db.ensure_database(wh.ops_url)
    warehouse.bootstrap(wh.url, cfg)
    return wh, airflow_env.environment(cfg, wh.url, wh.ops_url)


def _redacted(url: str) -> str:
    parts = db.parts(url)
    if "password" in parts:
        parts["password"] = "***"
    return db.to_url(parts)


def _airflow(args: list[str], env: dict[str, str]) -> int:
    """Run an ``airflow`` sub-command of this virtualenv; its output streams to ours."""
    airflow = str(Path(sys.executable).with_name("airflow"))
    return subprocess.run([airflow, *args], env=env).returncode


def _migrate(env: dict[str, str]) -> None:
    """Create or upgrade Airflow's metadata database, once per Airflow version (it takes ~5 s)."""
    # Not `import airflow` here: it would configure Airflow with this process's environment.
    airflow_version = importlib.metadata.version("apache-airflow")
    stamp = Path(env["AIRFLOW_HOME"]) / f".migrated-{airflow_version}"
    if stamp.exists():
        return
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    if _airflow(["db", "migrate"], env) != 0:
        raise SystemExit("airflow db migrate failed")
    stamp.touch()


def cmd_run(_args: argparse.Namespace) -> int:
    started = time.monotonic()
    cfg = settings()
    wh, env = _prepare()
    if cfg.demo:
        from include import demo

        summary = demo.generate(cfg.landing_dir, wh.ops_url, scale=cfg.demo_scale, seed=cfg.demo_seed)
        log.info("demo sources: %s", summary)
    else:
        log.info("DEMO=0: using the sources as they are, generating nothing")
    _migrate(env)
    # All DAGs in one process (include/run_dags.py): `airflow dags test` each, without paying
    # Airflow's start-up four times.
    log.info("running DAGs in order: %s", ", ".join(PIPELINE))
    run = subprocess.run([sys.executable, "-m", "include.run_dags", *PIPELINE], env=env)
    failed = run.returncode != 0
    elapsed = time.monotonic() - started
    print()
    print(f"Warehouse ({wh.kind}): {_redacted(wh.url)}")
    print(f"Query it:  {wh.psql_command()} -c 'select * from marts.programme_kpis'")
    if wh.kind == "embedded":
        print("The embedded PostgreSQL keeps running for your queries; `make stop` stops it.")
    print(f"Pipeline finished in {elapsed:.1f} s" + ("; FAILED (see above)" if failed else ""))
    return 1 if failed else 0


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
    """Airflow as on the team server (include/airflow_server.py), stopped whole on Ctrl-C.

    api-server, scheduler, dag-processor and triggerer as separate processes on a PostgreSQL
    metadata database; ``EXECUTOR=celery`` adds Celery workers on ``REDIS_URL``.
    """
    from include import airflow_server

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


def cmd_bench_load(args: argparse.Namespace) -> int:
    from include import bench_load

    return bench_load.main(args.bench_args) or 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(
        prog="bw", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="build the warehouse").set_defaults(func=cmd_run)
    sub.add_parser("stop", help="stop the embedded PostgreSQL").set_defaults(func=cmd_stop)
    sub.add_parser("warehouse", help="print the warehouse in use").set_defaults(func=cmd_warehouse)
    demo_parser = sub.add_parser("demo-data", help="write demo sources")
    demo_parser.add_argument("--scale", type=int, default=None)
    demo_parser.set_defaults(func=cmd_demo_data)
    sub.add_parser("airflow", help="Airflow as on the team server, on 127.0.0.1").set_defaults(
        func=cmd_airflow
    )
    sub.add_parser("bench-load", help="loader benchmark (its own options: --scale N, --only …)").set_defaults(
        func=cmd_bench_load
    )
    # bench-load passes its options on to include.bench_load; every other command takes none.
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "bench-load":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.bench_args = extra
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
