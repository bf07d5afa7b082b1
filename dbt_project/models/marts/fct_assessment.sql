-- One row per assessment. is_counted marks the one assessment per factory and cycle that the
-- non-compliance rates use (complete, latest start date; never a retired "(Obsolete)" factory).
-- An incomplete assessment (a record of it rejected in the export that wins for it) is kept with
-- is_complete false and the reason, and counted nowhere.
select
    assessment_id,
    factory_id,
    cycle,
    start_date,
    tool_version,
    ncq_assessed::int as ncq_assessed,
    ncq_noncompliant::int as ncq_noncompliant,
    is_obsolete_factory,
    is_counted,
    is_complete,
    incomplete_reason
from {{ ref('int_assessments') }}
