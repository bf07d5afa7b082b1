-- Factory × cycle × compliance point of counted assessments: assessed when any NCQ question of
-- the point has finding 0 or 1, non-compliant when any has 1. Points outside the catalogue
-- (null compliance_point) cannot be attributed and are left out.
with

findings as (
    select * from {{ ref('stg_assessment_export_rows') }}
),

assessments as (
    select * from {{ ref('int_assessments') }}
    where is_counted
)

select
    assessments.factory_id,
    assessments.cycle,
    assessments.assessment_id,
    findings.cluster,
    findings.compliance_point,
    bool_or(findings.is_noncompliant) as is_noncompliant
from findings
inner join assessments
    on findings.assessment_id = assessments.assessment_id
where
    findings.question_type = 'NCQ'
    and findings.is_noncompliant is not null
    and findings.compliance_point is not null
group by
    assessments.factory_id,
    assessments.cycle,
    assessments.assessment_id,
    findings.cluster,
    findings.compliance_point
