"""The pseudonym key: never stored in the database, refused when weak, one per warehouse, changed
only by ``bw rotate-key``; and no printed URL or hint holds a password."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import stat

import psycopg
import pytest

from include import cli, db, warehouse
from include.config import settings
from include.transform import dbt as transform

KEY_A = "a" * 8 + "-first-test-key-0123456789abcdef"
KEY_B = "b" * 8 + "-second-test-key-0123456789abcdef"


def cfg_with(key: str | None, tmp_path, **more):
    return dataclasses.replace(
        settings(), pseudonym_key=key, pseudonym_key_file=tmp_path / "secrets" / "pseudonym.key", **more
    )


def everything_in(url: str) -> str:
    """Every value of every table outside raw, as text (a stand-in for a dump of the database)."""
    out = []
    with db.connect(url) as conn:
        tables = conn.execute(
            "select format('%I.%I', table_schema, table_name) from information_schema.tables"
            " where table_schema not in ('pg_catalog', 'information_schema') and table_type = 'BASE TABLE'"
        ).fetchall()
        for (table,) in tables:
            out += [str(r) for r in conn.execute(f"select * from {table}").fetchall()]
        out += [r[0] or "" for r in conn.execute("select prosrc from pg_proc").fetchall()]
    return "\n".join(out)


@pytest.mark.parametrize("key", ["change-me", "CHANGE-ME", "changeme", "secret", "short-key", "x" * 31])
def test_weak_or_placeholder_keys_are_refused(key, tmp_path):
    with pytest.raises(warehouse.PseudonymKeyError):
        warehouse.pseudonym_key(cfg_with(key, tmp_path))


def test_the_key_is_never_stored_only_its_fingerprint(fresh_database, tmp_path):
    cfg = cfg_with(KEY_A, tmp_path)
    warehouse.bootstrap(fresh_database, cfg)
    with db.connect(fresh_database) as conn:
        columns = [
            r[0]
            for r in conn.execute(
                "select column_name from information_schema.columns"
                " where table_schema = 'private' and table_name = 'pseudonym_key' order by ordinal_position"
            )
        ]
        stored = conn.execute("select fingerprint from private.pseudonym_key").fetchone()[0]
    assert columns == ["id", "fingerprint", "installed_at"]
    assert stored == warehouse.fingerprint(KEY_A.encode())
    inner, outer = warehouse.hmac_pads(KEY_A.encode())
    dump = everything_in(fresh_database)
    for secret in (KEY_A, KEY_A.encode().hex(), inner.hex(), outer.hex()):
        assert secret not in dump


def test_pseudonyms_need_the_key_in_the_session(fresh_database, tmp_path):
    cfg = cfg_with(KEY_A, tmp_path)
    warehouse.bootstrap(fresh_database, cfg)
    with (
        db.connect(fresh_database) as conn,
        pytest.raises(psycopg.errors.RaiseException, match="no pseudonym key"),
    ):
        conn.execute("select private.pseudonym('factory', '1')")
    with warehouse.connect_keyed(fresh_database, cfg) as conn:
        value = conn.execute("select private.pseudonym('factory', '1')").fetchone()[0]
    assert value == hmac.new(KEY_A.encode(), b"factory:1", hashlib.sha256).hexdigest()


def test_another_key_fails_until_rotated(fresh_database, tmp_path, monkeypatch):
    warehouse.bootstrap(fresh_database, cfg_with(KEY_A, tmp_path))
    with pytest.raises(warehouse.PseudonymKeyError, match="rotate-key"):
        warehouse.bootstrap(fresh_database, cfg_with(KEY_B, tmp_path))
    # dbt never starts with it either: its environment is refused
    monkeypatch.setenv("PSEUDONYM_KEY", KEY_B)
    with pytest.raises(warehouse.PseudonymKeyError, match="not the key"):
        transform.dbt_env(fresh_database)
    # `bw rotate-key` (the deliberate change), then the new key is the warehouse's
    monkeypatch.setenv("WAREHOUSE_URL", fresh_database)
    assert cli.main(["rotate-key"]) == 0
    warehouse.bootstrap(fresh_database, cfg_with(KEY_B, tmp_path))
    assert "PGOPTIONS" in transform.dbt_env(fresh_database)
    with pytest.raises(warehouse.PseudonymKeyError):
        warehouse.bootstrap(fresh_database, cfg_with(KEY_A, tmp_path))


def test_a_missing_key_file_is_never_silently_replaced(fresh_database, tmp_path):
    cfg = cfg_with(None, tmp_path)
    warehouse.bootstrap(fresh_database, cfg)  # a new warehouse: a key file is made
    key_file = cfg.pseudonym_key_file
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and len(key_file.read_text().strip()) == 64
    first = key_file.read_text()
    warehouse.bootstrap(fresh_database, cfg)  # same key: fine
    key_file.unlink()
    with pytest.raises(warehouse.PseudonymKeyMissing, match="Restore the key"):
        warehouse.bootstrap(fresh_database, cfg)
    assert not key_file.exists()
    key_file.write_text(first)  # restored from the backup
    warehouse.bootstrap(fresh_database, cfg)


def test_a_warehouse_of_an_earlier_version_loses_its_pads(fresh_database, tmp_path):
    inner, outer = warehouse.hmac_pads(KEY_A.encode())
    with db.connect(fresh_database) as conn:
        conn.execute("create schema private")
        conn.execute(
            "create table private.pseudonym_key (id int primary key, inner_pad bytea not null,"
            " outer_pad bytea not null, fingerprint text not null, installed_at timestamptz default now())"
        )
        conn.execute(
            "insert into private.pseudonym_key values (1, %s, %s, %s)",
            (inner, outer, hashlib.sha256(outer).hexdigest()[:16]),
        )
    with pytest.raises(warehouse.PseudonymKeyError):
        warehouse.bootstrap(fresh_database, cfg_with(KEY_B, tmp_path))  # not its key
    warehouse.bootstrap(fresh_database, cfg_with(KEY_A, tmp_path))
    assert outer.hex() not in everything_in(fresh_database)


def test_printed_urls_and_hints_hold_no_password(fresh_database, monkeypatch, capsys, caplog):
    assert (
        db.redact("postgresql://bw:s3cr%40t@db:5432/betterwork") == "postgresql://bw:***@db:5432/betterwork"
    )
    assert db.redact("postgresql://bw@db:5432/x") == "postgresql://bw@db:5432/x"
    assert "s3cret" not in db.redact("host=db user=bw password=s3cret dbname=x")
    # the server's real password if it has one (scram), else one that trust authentication ignores
    secret = db.parts(fresh_database).get("password") or "pw-should-not-print"
    with_password = db.to_url({**db.parts(fresh_database), "password": secret})
    monkeypatch.setenv("WAREHOUSE_URL", with_password)
    wh = warehouse.resolve(settings())
    assert secret not in wh.psql_command()
    caplog.set_level("DEBUG")
    assert cli.main(["warehouse"]) == 0
    printed = capsys.readouterr()
    assert secret not in printed.out + printed.err + caplog.text
    assert "***" in printed.out
