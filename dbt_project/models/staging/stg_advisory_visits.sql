-- Advisory visits, latest version per visit; deletions flagged.
{{ config(indexes=[{'columns': ['visit_id'], 'unique': True}, {'columns': ['factory_id']}]) }}

with

latest as (
    {{ latest_version(
        source('raw', 'cm_advisory_visits'),
        'visit_id',
        'updated_at desc nulls last, _batch_id desc, _source_row desc'
    ) }}
)

select
    visit_id,
    factory_id,
    visit_date,
    lower(trim(phase)) as phase,
    lower(trim(mode)) as mode,
    advisor_code,
    topics,
    updated_at,
    deleted_at,
    deleted_at is not null as is_deleted
from latest
