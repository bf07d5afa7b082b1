-- One row per assessment (Quest.ID) with its header from the latest loaded row, its NCQ counts
-- and whether it counts: not a retired "(Obsolete)" factory, and the latest start date of its
-- factory's cycle (ties: the higher assessment id), so one assessment per factory per cycle.
with

findings as (
    select * from {{ ref('stg_assessment_export_rows') }}
),

export_factories as (
    select * from {{ ref('int_export_factories') }}
),

headers as (
    select distinct on (assessment_id)
        assessment_id,
        factory_id,
        cycle,
        start_date,
        tool_version
    from findings
    order by assessment_id asc, batch_id desc, source_row desc
),

ncq_counts as (
    select
        assessment_id,
        count(*) filter (
            where question_type = 'NCQ' and is_noncompliant is not null
        ) as ncq_assessed,
        count(*) filter (where question_type = 'NCQ' and is_noncompliant) as ncq_noncompliant
    from findings
    group by assessment_id
),

flagged as (
    select
        headers.assessment_id,
        headers.factory_id,
        headers.cycle,
        headers.start_date,
        headers.tool_version,
        ncq_counts.ncq_assessed,
        ncq_counts.ncq_noncompliant,
        coalesce(export_factories.is_obsolete, false) as is_obsolete_factory
    from headers
    inner join ncq_counts
        on headers.assessment_id = ncq_counts.assessment_id
    left join export_factories
        on headers.factory_id = export_factories.factory_id
),

ranked as (
    select
        flagged.*,
        row_number() over (
            partition by flagged.factory_id, flagged.cycle
            order by flagged.start_date desc nulls last, flagged.assessment_id desc
        ) as cycle_rank
    from flagged
)

select
    assessment_id,
    factory_id,
    cycle,
    start_date,
    tool_version,
    ncq_assessed,
    ncq_noncompliant,
    is_obsolete_factory,
    (
        not is_obsolete_factory
        and cycle_rank = 1
        and factory_id is not null
        and cycle is not null
        and start_date is not null
    ) as is_counted
from ranked
