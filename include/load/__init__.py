"""Loading: staged batches, validated, published to ``raw`` and ``audit`` in one transaction.

Modules, in the data's way through (docs/INTERNALS.md has the whole map):

- :mod:`include.load.exports`: entry point of the assessment export files
  (:func:`load_assessment_exports`): land each new file, stage it, validate a run's files
  together, publish each;
- :mod:`include.load.case_management`: entry point of one case-management table
  (:func:`load_case_management_table`);
- :mod:`include.load.surveys`: entry point of the survey files
  (:func:`~include.load.surveys.load_survey_files`);
- :mod:`include.load.file_batches`: what the file sources (exports, surveys) share: land each file,
  skip known content, stage, validate together else alone, publish or reject;
- :mod:`include.load.stage_exports`, :mod:`include.load.stage_surveys` and
  :mod:`include.load.stage_case_management`: what each source does between extraction and publish
  (``COPY`` or the row parser; rows quarantined alone);
- :mod:`include.load.batches`: a batch's life, the same for every source (open, publish, reject,
  abandon, the run's summary and :class:`LoadFailed`).

The entry points load everything they can, then raise :class:`LoadFailed` naming every
rejected or quarantined batch (and, for exports, every held assessment), so that the Airflow task
ends failed and someone looks. The names below are the package's interface; everything else is
imported from its own module.
"""

from __future__ import annotations

from include.load import batches, case_management, exports, stage_case_management, stage_exports
from include.load.batches import BatchResult, LoadFailed, analyze
from include.load.case_management import load_case_management_table
from include.load.exports import HELD_NAMED, VALIDATION_GROUP, load_assessment_exports
from include.load.file_batches import SEEN_STATUSES
from include.load.stage_case_management import CM_SOURCE, purge_quarantine
from include.load.stage_exports import EXPORT_ENTITY, EXPORT_TABLE, EXPORTS_SOURCE, stage_export

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
