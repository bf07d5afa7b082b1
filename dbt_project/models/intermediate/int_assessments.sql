-- One row per assessment (Quest.ID) with its header from the latest export's row, its NCQ counts,
-- whether it is complete and whether it counts: complete, not a retired "(Obsolete)" factory, and
-- the latest start date among the complete assessments of its factory's cycle (ties: the higher
-- assessment id), so one assessment per factory per cycle.
--
-- Complete: the export that wins for the assessment (latest export date, then latest batch, over
-- loaded batches holding a row of it in raw or a rejected record of it in quarantine) has no
-- rejected record of it. An incomplete assessment is held out of every count as if it had not
-- been loaded (a complete one of the same cycle counts instead); a later complete export of it
-- makes it complete again.
{{ config(indexes=[{'columns': ['assessment_id'], 'unique': True}]) }}

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
    order by assessment_id asc, exported_on desc nulls last, batch_id desc, source_row desc
),

-- the latest export holding a row of the assessment in raw: the per-question winners' best
raw_exports as (
    select distinct on (assessment_id)
        assessment_id,
        exported_on,
        batch_id
    from findings
    order by assessment_id asc, exported_on desc nulls last, batch_id desc
),

rejections as (
    select
        trim(rejected.assessment_id) as assessment_id,
        rejected.batch_id,
        batches.exported_on,
        count(*) as rejected_records,
        min(rejected.source) as source_file,
        min(rejected.reason) as first_reason
    from {{ source('quarantine', 'rejected_rows') }} as rejected
    inner join {{ source('audit', 'load_batches') }} as batches
        on rejected.batch_id = batches.batch_id
    where
        rejected.assessment_id is not null
        and batches.status = 'loaded'
    group by trim(rejected.assessment_id), rejected.batch_id, batches.exported_on
),

winning_exports as (
    select distinct on (assessment_id)
        assessment_id,
        batch_id
    from (
        select
            assessment_id,
            exported_on,
            batch_id
        from raw_exports
        union all
        select
            assessment_id,
            exported_on,
            batch_id
        from rejections
    ) as exports
    order by assessment_id asc, exported_on desc nulls last, batch_id desc
),

completeness as (
    select
        winning_exports.assessment_id,
        rejections.assessment_id is null as is_complete,
        case
            when rejections.assessment_id is not null
                then
                    rejections.rejected_records || ' record(s) of this assessment rejected in batch '
                    || rejections.batch_id || ' (' || rejections.source_file || '), e.g. '
                    || rejections.first_reason
                    || '; held out of every count until a complete export of it is loaded'
        end as incomplete_reason
    from winning_exports
    left join rejections
        on
            winning_exports.assessment_id = rejections.assessment_id
            and winning_exports.batch_id = rejections.batch_id
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
        coalesce(export_factories.is_obsolete, false) as is_obsolete_factory,
        coalesce(completeness.is_complete, true) as is_complete,
        completeness.incomplete_reason
    from headers
    inner join ncq_counts
        on headers.assessment_id = ncq_counts.assessment_id
    left join export_factories
        on headers.factory_id = export_factories.factory_id
    left join completeness
        on headers.assessment_id = completeness.assessment_id
),

ranked as (
    select
        flagged.*,
        row_number() over (
            partition by flagged.factory_id, flagged.cycle, flagged.is_complete
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
    is_complete,
    incomplete_reason,
    (
        is_complete
        and not is_obsolete_factory
        and cycle_rank = 1
        and factory_id is not null
        and cycle is not null
        and start_date is not null
    ) as is_counted
from ranked
