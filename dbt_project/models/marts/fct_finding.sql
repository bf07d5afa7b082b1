-- One row per assessment × question, from the latest export (stg_assessment_export_rows).
--
-- Incremental: the assessments whose findings changed (a winning row from a batch newer than the
-- newest held here) or whose header changed (factory, cycle, counted or not: e.g. a later
-- assessment of the same cycle, an export marking the factory obsolete, a rejected record) are
-- rebuilt whole (delete + insert on assessment_id). `dbt build --full-refresh` rebuilds all.
{{ config(
    materialized='incremental',
    unique_key='assessment_id',
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    indexes=[{'columns': ['assessment_id']}, {'columns': ['batch_id']}],
) }}

with

assessments as (
    select * from {{ ref('int_assessments') }}
),

{% if is_incremental() %}
    changed as (
        select new_findings.assessment_id
        from {{ ref('stg_assessment_export_rows') }} as new_findings
        where new_findings.batch_id > (select coalesce(max(held.batch_id), 0) from {{ this }} as held)
        union
        select held.assessment_id
        from {{ this }} as held
        inner join assessments as now_known
            on held.assessment_id = now_known.assessment_id
        where
            held.factory_id is distinct from now_known.factory_id
            or held.cycle is distinct from now_known.cycle
            or held.is_counted is distinct from (
                now_known.is_counted and held.question_type = 'NCQ' and held.is_noncompliant is not null
            )
    ),
{% endif %}

findings as (
    select * from {{ ref('stg_assessment_export_rows') }}
    {% if is_incremental() %}
        where assessment_id in (select changed.assessment_id from changed)
    {% endif %}
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
    ) as is_counted,
    findings.batch_id
from findings
inner join assessments
    on findings.assessment_id = assessments.assessment_id
