"""With no PostgreSQL answering where the pipeline looks, the warehouse is the embedded server."""

from __future__ import annotations

import socket

import pytest

from include import db, warehouse
from include.config import settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def no_local_server(tmp_path, monkeypatch):
    """Settings under which nothing answers: WAREHOUSE_URL unset, the probe aimed at a closed port."""
    monkeypatch.delenv("WAREHOUSE_URL", raising=False)
    monkeypatch.setenv("LOCAL_PG_URL", f"postgresql://postgres@127.0.0.1:{_free_port()}/postgres")
    monkeypatch.setenv("EMBEDDED_PG_DIR", str(tmp_path / "pgdata"))
    monkeypatch.setenv("EMBEDDED_PG_PORT", str(_free_port()))
    monkeypatch.setenv("PSEUDONYM_KEY", "embedded-test-key-not-secret-0123456789abcdef")
    yield settings()
    warehouse.stop_embedded(settings())


def test_resolves_to_a_started_embedded_server_and_stops_it(no_local_server):
    cfg = no_local_server
    wh = warehouse.resolve(cfg)
    assert wh.kind == "embedded"
    assert db.parts(wh.url)["host"] == "127.0.0.1"
    assert db.parts(wh.url)["port"] == str(cfg.embedded_pg_port)
    assert db.parts(wh.url)["dbname"] == "betterwork"

    warehouse.bootstrap(wh.url, cfg)  # schemas, roles and the pseudonym key work there too
    with warehouse.connect_keyed(wh.url, cfg) as conn:
        listen = conn.execute("show listen_addresses").fetchone()[0]
        data_directory = conn.execute("select current_setting('data_directory')").fetchone()[0]
        pseudonym = conn.execute("select private.pseudonym('person', 'p1')").fetchone()[0]
    assert listen == "127.0.0.1"
    assert data_directory == str(cfg.embedded_pg_dir)
    assert len(pseudonym) == 64

    # A second resolve reuses the running server instead of starting another.
    assert warehouse.resolve(cfg).url == wh.url
    # The server has a generated password (scram), kept under .secrets/, never printed.
    password = db.parts(wh.url)["password"]
    assert password and password not in wh.psql_command()
    assert wh.psql_command().endswith(f'"{db.redact(wh.url).replace(":***@", "@")}"')
    with pytest.raises(Exception, match="password"):
        db.connect(db.to_url({**db.parts(wh.url), "password": ""}), connect_timeout=5).close()
    hba = (cfg.embedded_pg_dir / "pg_hba.conf").read_text()
    assert "trust" not in [line.split()[-1] for line in hba.splitlines() if line and not line.startswith("#")]

    assert warehouse.stop_embedded(cfg) is True
    assert not db.answers(db.with_database(wh.url, "postgres"))
