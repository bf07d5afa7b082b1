"""The data contract's source names (docs/SOURCES.md), defined once.

The demo generator writes sources with these names and the extractors read them, so both sides
take them from here: a change to the contract is a change to this module.
"""

from __future__ import annotations

EXPORT_COLUMNS = (
    "Country",
    "Factory.Assessed.ID",
    "Factory.Assessed.Name",
    "Quest.ID",
    "Assesment.Start.Date",  # sic: the global system's spelling
    "Cycle",
    "Question.type",
    "Question.ID",
    "Q.Label",
    "CP",
    "Cluster",
    "Finding",
    "Tags",
    "TQ.Name",
)
"""Columns of an assessment export (§1), spelled exactly as the global assessment system does."""

CASE_MANAGEMENT_TABLES = (
    "factories",
    "brands",
    "factory_brands",
    "advisory_visits",
    "courses",
    "training_sessions",
    "training_participants",
    "picc_meetings",
    "improvement_items",
)
"""Tables of the case-management database (§2), in extraction order (referenced tables first)."""

RAW_TABLES = ("assessment_export_rows", *(f"cm_{table}" for table in CASE_MANAGEMENT_TABLES))
"""The ``raw`` schema's tables: one for the exports, one per case-management table."""
