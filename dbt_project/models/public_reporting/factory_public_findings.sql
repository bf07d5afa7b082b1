-- The transparency page's detail: one row per public factory × question tagged `Public
-- Disclosure` in its latest counted assessment (NCQ questions: a finding of 0 or 1, or not assessed).
with

assessments as (
    select * from {{ ref('public_latest_assessment') }}
),

factories as (
    select * from {{ ref('dim_factory') }}
),

findings as (
    select * from {{ ref('fct_finding') }}
    where is_public_disclosure and question_type = 'NCQ'
)

select
    assessments.factory_id,
    factories.name as factory_name,
    factories.city,
    assessments.cycle,
    assessments.start_date as assessment_date,
    findings.question_id,
    findings.cluster,
    findings.compliance_point,
    findings.question_label,
    findings.is_noncompliant,
    current_date as data_as_of
from assessments
inner join factories on assessments.factory_id = factories.factory_id
inner join findings on assessments.assessment_id = findings.assessment_id
