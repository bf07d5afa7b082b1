"""Transform: dbt builds the warehouse's staging, marts and research schemas from ``raw``."""
