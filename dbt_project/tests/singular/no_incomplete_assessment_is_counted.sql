-- An incomplete assessment (a record rejected in the export that wins for it) is held out of every
-- count: it is never `is_counted`, and no mart row is built from it. Rows returned = failures.
select
    'fct_assessment' as model,
    assessment_id
from {{ ref('fct_assessment') }}
where is_counted and not is_complete

union all

select
    'fct_finding' as model,
    findings.assessment_id
from {{ ref('fct_finding') }} as findings
inner join {{ ref('fct_assessment') }} as assessments
    on findings.assessment_id = assessments.assessment_id
where findings.is_counted and not assessments.is_complete

union all

select
    'factory_cycle_panel' as model,
    panel.assessment_id
from {{ ref('factory_cycle_panel') }} as panel
inner join {{ ref('fct_assessment') }} as assessments
    on panel.assessment_id = assessments.assessment_id
where not assessments.is_complete

union all

select
    'int_factory_cycle_compliance_points' as model,
    points.assessment_id
from {{ ref('int_factory_cycle_compliance_points') }} as points
inner join {{ ref('fct_assessment') }} as assessments
    on points.assessment_id = assessments.assessment_id
where not assessments.is_complete
