"""Airflow as on the team server, natively: one process per component, stopped by PID.

``make airflow`` (``bw airflow``) starts the api-server, scheduler, dag-processor and triggerer
as separate processes with the LocalExecutor; ``EXECUTOR=celery`` adds ``CELERY_WORKERS`` Celery
workers on the Redis at ``REDIS_URL``. The metadata database is PostgreSQL (``bw_airflow`` on the
warehouse's server unless ``AIRFLOW_DATABASE_URL`` says otherwise), the environment the one of
docker-compose.yml (include/orchestration/airflow_env.py).

Each component runs in a session of its own and is stopped as a process group by its PID
(SIGTERM, then SIGKILL): a signal to a parent alone would orphan the executor's and the task
supervisors' children. Each writes its output to ``$AIRFLOW_HOME/logs/<component>.log``.

The small REST client here (``/auth/token``, then ``/api/v2`` with the token) serves the
command's wait for health, and the scheduler tests.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

LOCAL_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_answers(url: str, timeout: float = 2.0) -> bool:
    """Whether a Redis answers PING at ``redis://host:port/db``."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout) as s:
            if parts.password:
                s.sendall(f"AUTH {parts.password}\r\n".encode())
                s.recv(64)
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _airflow() -> str:
    return str(Path(sys.executable).with_name("airflow"))


def migrate(env: dict[str, str]) -> None:
    """Create or upgrade the metadata database (idempotent; a few seconds when up to date)."""
    from include import db

    db.ensure_database(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("+psycopg2", ""))
    log = Path(env["AIRFLOW_HOME"]) / "logs" / "db-migrate.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        rc = subprocess.run([_airflow(), "db", "migrate"], env=env, stdout=out, stderr=out).returncode
    if rc != 0:
        raise RuntimeError(f"airflow db migrate failed (exit {rc}); see {log}")


@dataclass
class Stack:
    """Airflow's components as child processes of this one."""

    env: dict[str, str]
    celery_workers: int = 0
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return Path(self.env["AIRFLOW_HOME"])

    @property
    def port(self) -> int:
        return int(self.env["AIRFLOW__API__PORT"])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    def commands(self) -> dict[str, list[str]]:
        """Component name -> command line."""
        commands = {
            "api-server": ["api-server", "--host", "127.0.0.1", "--port", str(self.port)],
            "scheduler": ["scheduler"],
            "dag-processor": ["dag-processor"],
            "triggerer": ["triggerer"],
        }
        queue = self.env.get("AIRFLOW__OPERATORS__DEFAULT_QUEUE", "default")
        for n in range(1, self.celery_workers + 1):
            commands[f"celery-worker-{n}"] = [
                "celery",
                "worker",
                "--queues",
                queue,
                "--celery-hostname",
                f"bw{n}-{queue}-{os.getpid()}@%h",
                "--concurrency",
                self.env.get("AIRFLOW__CELERY__WORKER_CONCURRENCY", "2"),
            ]
        return commands

    def start(self) -> None:
        """Start every component (in the background); see :meth:`wait_healthy`."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for name, args in self.commands().items():
            out = (self.log_dir / f"{name}.log").open("ab")
            self.processes[name] = subprocess.Popen(
                [_airflow(), *args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            out.close()

    def dead(self) -> list[str]:
        """Components that have exited."""
        return [name for name, p in self.processes.items() if p.poll() is not None]

    def wait_healthy(self, timeout: float = 180) -> float:
        """Wait until the API answers and the scheduler, triggerer and dag processor report
        healthy; return the seconds waited. Raises if a component dies or time runs out."""
        started = time.monotonic()
        deadline = started + timeout
        wanted = ("metadatabase", "scheduler", "triggerer", "dag_processor")
        last: object = None
        while time.monotonic() < deadline:
            if dead := self.dead():
                raise RuntimeError(f"Airflow component(s) exited: {dead}; logs in {self.log_dir}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=5) as r:
                    last = json.load(r)
                if all((last.get(k) or {}).get("status") == "healthy" for k in wanted):
                    return time.monotonic() - started
            except (OSError, ValueError):
                pass
            time.sleep(1)
        raise TimeoutError(
            f"Airflow not healthy after {timeout:.0f} s (last health: {last}); logs in {self.log_dir}"
        )

    def stop(self, timeout: float = 30) -> None:
        """Stop every component by PID, its process group with it: SIGTERM, then SIGKILL."""
        for proc in reversed(list(self.processes.values())):
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.processes.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for proc in self.processes.values():
            _signal_group(proc, signal.SIGKILL)  # what survived SIGTERM, children included
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    # ------------------------------------------------------------------ REST API (v2)

    def password(self, user: str = "admin") -> str:
        """The simple auth manager's generated password of ``user``."""
        path = self.home / "simple_auth_manager_passwords.json.generated"
        return json.loads(path.read_text())[user]

    def client(self, user: str = "admin") -> ApiClient:
        return ApiClient(self.url, user, self.password(user))


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # the component's session: its pgid is its PID
    except (ProcessLookupError, PermissionError):
        pass


class ApiClient:
    """Airflow's public REST API with a JWT from the simple auth manager (``POST /auth/token``)."""

    def __init__(self, url: str, user: str, password: str):
        self.url = url
        body = json.dumps({"username": user, "password": password}).encode()
        req = urllib.request.Request(
            f"{url}/auth/token", data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(req, timeout=60) as r:
            self.token = json.load(r)["access_token"]

    def request(self, method: str, path: str, body: dict | None = None) -> dict:
        req = urllib.request.Request(
            f"{self.url}/api/v2{path}",
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            method=method,
        )
        for attempt in range(3):  # a loaded machine can keep the API server busy for a while
            try:
                with urllib.request.urlopen(req, timeout=60) as r:
                    return json.load(r)
            except urllib.error.HTTPError as err:
                raise RuntimeError(f"{method} {path}: HTTP {err.code} {err.read()[:500]!r}") from err
            except TimeoutError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def get(self, path: str) -> dict:
        return self.request("GET", path)

    def unpause(self, dag_id: str) -> dict:
        return self.request("PATCH", f"/dags/{dag_id}", {"is_paused": False})

    def trigger(self, dag_id: str) -> dict:
        return self.request("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": None})

    def runs(self, dag_id: str) -> list[dict]:
        return self.get(f"/dags/{dag_id}/dagRuns?order_by=start_date&limit=100")["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        from urllib.parse import quote

        return self.get(f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances")["task_instances"]
