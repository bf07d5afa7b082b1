"""Loading: staged batches, validated, published to ``raw`` and ``audit`` in one transaction.

Modules, in the data's way through (docs/INTERNALS.md has the whole map):

- :mod:`include.load.exports`: entry point of the assessment export files
  (:func:`load_assessment_exports`): land each new file, stage it, validate a run's files
  together, publish each;
- :mod:`include.load.case_management`: entry point of one case-management table
  (:func:`load_case_management_table`);
- :mod:`include.load.stage_exports` and :mod:`include.load.stage_case_management`: what each source
  does between extraction and publish (``COPY`` or the row parser; rows quarantined alone);
- :mod:`include.load.batches`: a batch's life, the same for every source (open, publish, reject,
  abandon, the run's summary and :class:`LoadFailed`).

The two entry points load everything they can, then raise :class:`LoadFailed` naming every
rejected or quarantined batch (and, for exports, every held assessment), so that the Airflow task
ends failed and someone looks. The names below are the package's interface; the underscored ones
are the names these functions had when the loader was one module, kept for callers of that time.
"""

from __future__ import annotations

from include.load import batches, case_management, exports, stage_case_management, stage_exports
from include.load.batches import BatchResult, LoadFailed, analyze
from include.load.case_management import load_case_management_table
from include.load.exports import (
    HELD_NAMED,
    SEEN_STATUSES,
    VALIDATION_GROUP,
    load_assessment_exports,
)
from include.load.stage_case_management import CM_SOURCE, purge_quarantine
from include.load.stage_exports import EXPORT_ENTITY, EXPORT_TABLE, EXPORTS_SOURCE, stage_export

# the names of the one-module loader that came before this package, for existing callers
_loader_session = batches.loader_session
_abandon_stale = batches.abandon_stale
_stage_name = batches.stage_table
_drop_stage = batches.drop_stage
_open_batch = batches.open_batch
_create_rejects_table = batches.create_rejects_table
_reject_whole = batches.reject_whole
_publish = batches.publish
_attach = batches.attach_partition
_warnings = batches.warnings_text
_summary = batches.summary
_Quarantined = batches.Quarantined
_take_landed = exports.take_landed
_validate_and_publish = exports.validate_and_publish
_held_assessments = exports.held_assessments
_export_failure = exports.export_failure
_StagedExport = exports.StagedExport
_transient = exports.transient
_unexpected = exports.unexpected
_quarantine_rows = stage_case_management.quarantine_rows
_new_columns = stage_case_management.new_columns
_version_salt = stage_case_management.version_salt
_create_export_stage = stage_exports._create_export_stage
_add_batch_constants = stage_exports._add_batch_constants
_stage_csv_fast = stage_exports._stage_csv_fast
_stage_parsed = stage_exports._stage_parsed
_reject_impossible_dates = stage_exports._reject_impossible_dates
_maybe_swallowed = stage_exports._maybe_swallowed
_one_line_per_record = stage_exports._one_line_per_record

__all__ = [
    "CM_SOURCE",
    "EXPORTS_SOURCE",
    "EXPORT_ENTITY",
    "EXPORT_TABLE",
    "HELD_NAMED",
    "SEEN_STATUSES",
    "VALIDATION_GROUP",
    "BatchResult",
    "LoadFailed",
    "analyze",
    "batches",
    "case_management",
    "exports",
    "load_assessment_exports",
    "load_case_management_table",
    "purge_quarantine",
    "stage_case_management",
    "stage_export",
    "stage_exports",
]
