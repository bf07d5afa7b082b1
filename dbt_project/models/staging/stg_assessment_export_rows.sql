-- One row per assessment × question: the row of the latest export wins (a later export may repeat
-- an assessment with corrected findings): the latest export date (`audit.load_batches.exported_on`,
-- undated batches last), then the latest loaded batch, then the last row of the file. Renamed,
-- cast, compliance point made canonical through the seed catalogue; unknown spellings keep a null
-- compliance_point.
--
-- Incremental by batch: an assessment with a row in a batch newer than the newest winning batch
-- held here is recomputed from every raw row of it (so an older export loaded late still loses),
-- and replaces the assessment's rows (delete + insert on assessment_id). A change of the seeds
-- (catalogue, aliases) needs `dbt build --full-refresh`.
{{ config(
    materialized='incremental',
    unique_key='assessment_id',
    incremental_strategy='delete+insert',
    on_schema_change='sync_all_columns',
    indexes=[
        {'columns': ['assessment_id', 'question_id'], 'unique': True},
        {'columns': ['batch_id']},
    ],
) }}

with

batches as (
    select
        batch_id,
        exported_on
    from {{ source('audit', 'load_batches') }}
),

export_rows as (
    select
        export_rows.*,
        batches.exported_on
    from {{ source('raw', 'assessment_export_rows') }} as export_rows
    left join batches
        on export_rows._batch_id = batches.batch_id
    {% if is_incremental() %}
        where trim(export_rows."Quest.ID") in (  -- noqa: RF05
            select trim(new_rows."Quest.ID")  -- noqa: RF05
            from {{ source('raw', 'assessment_export_rows') }} as new_rows
            where new_rows._batch_id > (select coalesce(max(held.batch_id), 0) from {{ this }} as held)
        )
    {% endif %}
),

latest as (
    {{ latest_version(
        'export_rows',
        'trim("Quest.ID"), trim("Question.ID")',
        'exported_on desc nulls last, _batch_id desc, _source_row desc'
    ) }}
),

names as (
    select * from {{ ref('stg_compliance_point_names') }}
),

renamed as (
    select
        ----------  ids
        trim(latest."Quest.ID") as assessment_id,
        trim(latest."Question.ID")::int as question_id,
        trim(latest."Factory.Assessed.ID")::int as factory_id,
        ----------  assessment
        trim(latest."Country") as country,
        trim(latest."Factory.Assessed.Name") as factory_name,
        coalesce(trim(latest."Factory.Assessed.Name") ilike '%(obsolete)', false) as is_obsolete_factory,
        to_date(trim(latest."Assesment.Start.Date"), 'DD/MM/YYYY') as start_date,
        trim(latest."Cycle")::int as cycle,
        trim(latest."TQ.Name") as tool_version,
        ----------  question
        upper(trim(latest."Question.type")) as question_type,
        trim(latest."Q.Label") as question_label,
        latest."CP" as compliance_point_raw,
        names.compliance_point,
        coalesce(names.cluster, trim(latest."Cluster")) as cluster,
        nullif(trim(latest."Finding"), '') as finding,
        case
            when upper(trim(latest."Question.type")) = 'NCQ' then {{ binary_finding('latest."Finding"') }}
        end as is_noncompliant,
        coalesce(latest."Tags" ilike '%public disclosure%', false) as is_public_disclosure,
        latest."Tags" as tags,
        ----------  lineage
        latest._batch_id as batch_id,
        latest._source as source_file,
        latest._source_row as source_row,
        latest._loaded_at as loaded_at,
        latest.exported_on
    from latest
    left join names
        on {{ normalise_text('latest."CP"') }} = names.name_key
)

select * from renamed
