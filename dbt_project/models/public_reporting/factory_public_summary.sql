-- The transparency page's list of factories: one row per public factory, from its latest counted
-- assessment. A factory is public once that assessment is cycle 2 or later (cycle 1 is a grace
-- period) and it is in the registry, not deleted, not exited and not a retired (Obsolete) record.
with

findings as (
    select * from {{ ref('factory_public_findings') }}
),

factories as (
    select * from {{ ref('dim_factory') }}
),

assessments as (
    select * from {{ ref('public_latest_assessment') }}
)

select
    assessments.factory_id,
    factories.name as factory_name,
    factories.city,
    factories.sector,
    assessments.cycle,
    assessments.start_date as assessment_date,
    count(findings.question_id) filter (
        where findings.is_noncompliant is not null
    )::int as public_issues_assessed,
    count(findings.question_id) filter (where findings.is_noncompliant)::int as public_issues_noncompliant,
    current_date as data_as_of
from assessments
inner join factories on assessments.factory_id = factories.factory_id
left join findings on assessments.factory_id = findings.factory_id
group by
    assessments.factory_id,
    factories.name,
    factories.city,
    factories.sector,
    assessments.cycle,
    assessments.start_date
