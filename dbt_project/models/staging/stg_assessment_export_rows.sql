-- One row per assessment × question: the row of the most recently loaded export wins (a later
-- export may repeat an assessment with corrected findings). Renamed, cast, compliance point made
-- canonical through the seed catalogue; unknown spellings keep a null compliance_point.
with

latest as (
    {{ latest_version(
        source('raw', 'assessment_export_rows'),
        'trim("Quest.ID"), trim("Question.ID")',
        '_batch_id desc, _source_row desc'
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
        latest._loaded_at as loaded_at
    from latest
    left join names
        on {{ normalise_text('latest."CP"') }} = names.name_key
)

select * from renamed
