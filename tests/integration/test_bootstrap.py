"""Two warehouses on one server bootstrapped at the same moment (two pipelines, or two test workers):
the roles are the server's, so their bootstraps meet in the catalog; both must end installed."""

from __future__ import annotations

import threading
import uuid

from include import db, warehouse


def test_concurrent_bootstraps_of_two_warehouses_on_one_server_both_succeed(pg_server_url, monkeypatch):
    monkeypatch.setenv("PSEUDONYM_KEY", "bootstrap-race-key-not-secret-0123456789abcdef")
    urls = [db.with_database(pg_server_url, f"bwtest_boot_{uuid.uuid4().hex[:10]}") for _ in range(4)]
    errors: list[BaseException] = []
    start = threading.Barrier(len(urls))

    def boot(url: str) -> None:
        try:
            start.wait()
            warehouse.bootstrap(url)
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    try:
        for url in urls:
            db.ensure_database(url)
        threads = [threading.Thread(target=boot, args=(url,)) for url in urls]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        for url in urls:
            with db.connect(url) as conn:
                assert conn.execute("select count(*) from private.pseudonym_key").fetchone() == (1,)
    finally:
        for url in urls:
            db.drop_database(url)
