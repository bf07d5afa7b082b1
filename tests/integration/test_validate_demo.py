"""The demo programme (include.demo) loads with no critical failure, and its known flaws warn."""

from __future__ import annotations

from include import db, load
from include.orchestration.assets import CASE_MANAGEMENT_TABLES


def test_demo_data_passes_every_critical_expectation(warehouse_db, fresh_ops_database, tmp_path, monkeypatch):
    from include.demo import generate

    monkeypatch.setenv("DOCS_DIR", str(tmp_path / "docs"))
    landing = tmp_path / "landing"
    generate(landing, fresh_ops_database, scale=1)

    # make run's order: the registry first, then the exports (checked against it)
    for table in CASE_MANAGEMENT_TABLES:
        load.load_case_management_table(warehouse_db, fresh_ops_database, table)
    summary = load.load_assessment_exports(warehouse_db, landing)  # raises LoadFailed on any bad batch
    assert summary["rows_loaded"] > 0

    with db.connect(warehouse_db) as conn:
        failed = conn.execute(
            "select suite, expectation from audit.validation_results"
            " where severity = 'critical' and not success"
        ).fetchall()
        statuses = conn.execute("select distinct status from audit.load_batches").fetchall()
        warned = conn.execute(
            "select distinct expectation from audit.validation_results"
            " where severity = 'warning' and not success"
        ).fetchall()
        raw = conn.execute("select count(*) from raw.assessment_export_rows").fetchone()[0]
    assert failed == []
    assert statuses == [("loaded",)]
    assert raw == summary["rows_loaded"]
    # older tool versions' compliance-point names are not canonical: recorded as warnings
    assert ("CP is a canonical name",) in warned

    # a second run changes nothing
    for table in CASE_MANAGEMENT_TABLES:
        assert load.load_case_management_table(warehouse_db, fresh_ops_database, table)["rows_loaded"] == 0
    assert load.load_assessment_exports(warehouse_db, landing)["batches"] == 0
