-- One row per assessment × question, from the latest loaded export.
with

findings as (
    select * from {{ ref('stg_assessment_export_rows') }}
),

assessments as (
    select * from {{ ref('int_assessments') }}
)

select
    findings.assessment_id || ':' || findings.question_id as finding_id,
    findings.assessment_id,
    findings.question_id,
    assessments.factory_id,
    assessments.cycle,
    findings.cluster,
    findings.compliance_point,
    findings.compliance_point_raw,
    findings.question_type,
    findings.question_label,
    findings.is_noncompliant,
    case when findings.question_type = 'FGW' then findings.finding end as answer,
    findings.is_public_disclosure,
    (
        assessments.is_counted
        and findings.question_type = 'NCQ'
        and findings.is_noncompliant is not null
    ) as is_counted
from findings
inner join assessments
    on findings.assessment_id = assessments.assessment_id
