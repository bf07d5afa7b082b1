"""``bw``: the commands behind the Makefile.

bw run          build the warehouse: resolve it, demo sources (DEMO=1), run the DAGs in order
bw stop         stop the embedded PostgreSQL, if the project started one
bw demo-data    write the demo sources at SCALE (default 1)
bw airflow      airflow standalone on 127.0.0.1, stopped with Ctrl-C
bw warehouse    print which warehouse the pipeline would use and how to reach it
bw bench-load   loader benchmark (bare COPY and pandas.to_sql for comparison)
bw rotate-key   make the configured pseudonym key the warehouse's (changes every pseudonym)
bw site         serve the static site (SITE_DIR) on 127.0.0.1 for a look (--build: rebuild it first)
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from include import airflow_env, db, warehouse
from include.config import settings

log = logging.getLogger("bw")

PIPELINE = ("extract_case_management", "extract_assessments", "transform", "research_release", "publish_site")
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
    return db.redact(url)


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
    """``airflow standalone`` in its own process group, stopped whole on Ctrl-C.

    Standalone's components (api-server, scheduler, dag-processor, triggerer) are children that a
    signal to the parent alone would orphan, so we signal the group, then kill what is left.
    """
    _wh, env = _prepare()
    _migrate(env)
    home = Path(env["AIRFLOW_HOME"])
    airflow = str(Path(sys.executable).with_name("airflow"))
    proc = subprocess.Popen([airflow, "standalone"], env=env, start_new_session=True)
    port = env["AIRFLOW__API__PORT"]
    print(
        f"Airflow UI: http://127.0.0.1:{port}  (user admin; password in "
        f"{home / 'simple_auth_manager_passwords.json.generated'} once it has started)"
    )
    print("Ctrl-C stops every Airflow process.")

    def stop(*_):
        raise KeyboardInterrupt

    # Explicit handlers: a shell's background job inherits SIGINT ignored, and Ctrl-C must still stop us.
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        _stop_group(proc)
    return 0


def _stop_group(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                print("Airflow stopped.")
                return
            time.sleep(0.5)


def cmd_bench_load(args: argparse.Namespace) -> int:
    from include import bench_load

    return bench_load.main(args.bench_args) or 0


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
        from include.site import builder

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
    sub.add_parser("run", help="build the warehouse").set_defaults(func=cmd_run)
    sub.add_parser("stop", help="stop the embedded PostgreSQL").set_defaults(func=cmd_stop)
    sub.add_parser("warehouse", help="print the warehouse in use").set_defaults(func=cmd_warehouse)
    demo_parser = sub.add_parser("demo-data", help="write demo sources")
    demo_parser.add_argument("--scale", type=int, default=None)
    demo_parser.set_defaults(func=cmd_demo_data)
    sub.add_parser("airflow", help="airflow standalone on 127.0.0.1").set_defaults(func=cmd_airflow)
    sub.add_parser("bench-load", help="loader benchmark (its own options: --scale N, --only …)").set_defaults(
        func=cmd_bench_load
    )
    rotate = sub.add_parser("rotate-key", help="install the configured pseudonym key (new pseudonyms)")
    rotate.add_argument("--generate", action="store_true", help="write a new key file if none exists")
    rotate.set_defaults(func=cmd_rotate_key)
    site_parser = sub.add_parser("site", help="serve the static site on 127.0.0.1")
    site_parser.add_argument("--port", type=int, default=8000)
    site_parser.add_argument("--build", action="store_true", help="rebuild the site from the warehouse first")
    site_parser.set_defaults(func=cmd_site)
    # bench-load passes its options on to include.bench_load; every other command takes none.
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "bench-load":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.bench_args = extra
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
