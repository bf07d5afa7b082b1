-- One row per assessment. is_counted marks the one assessment per factory and cycle that the
-- non-compliance rates use (latest start date; never a retired "(Obsolete)" factory).
select
    assessment_id,
    factory_id,
    cycle,
    start_date,
    tool_version,
    ncq_assessed::int as ncq_assessed,
    ncq_noncompliant::int as ncq_noncompliant,
    is_obsolete_factory,
    is_counted
from {{ ref('int_assessments') }}
