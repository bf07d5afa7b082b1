"""Airflow Assets: the raw tables the extraction DAGs fill and the marts the transform builds.

Kept in one module so the producer and consumer DAGs name an asset exactly the same way.
"""

from __future__ import annotations

from airflow.sdk import Asset, AssetAlias

from include.contract import CASE_MANAGEMENT_TABLES


def _raw(table: str) -> Asset:
    return Asset(name=f"raw.{table}", uri=f"postgres://warehouse/betterwork/raw/{table}", group="raw")


RAW_ASSESSMENT_EXPORT_ROWS = _raw("assessment_export_rows")
RAW_CASE_MANAGEMENT = {table: _raw(f"cm_{table}") for table in CASE_MANAGEMENT_TABLES}
RAW_SURVEYS = {instrument: _raw(f"survey_{instrument}_rows") for instrument in ("worker", "manager")}
"""The survey waves' raw tables (include/extract/surveys.py), one per instrument."""
RAW_ASSETS = [RAW_ASSESSMENT_EXPORT_ROWS, *RAW_CASE_MANAGEMENT.values(), *RAW_SURVEYS.values()]

MARTS = Asset(name="marts", uri="postgres://warehouse/betterwork/marts/all", group="marts")
"""Updated whenever the transform DAG has rebuilt the marts."""


def loaded_alias(asset: Asset) -> AssetAlias:
    """The alias an extraction task declares as its outlet and resolves to ``asset`` only when it
    loaded rows: a run with nothing new emits no event and triggers nothing (issue 13)."""
    return AssetAlias(name=f"{asset.name} loaded", group="raw")
