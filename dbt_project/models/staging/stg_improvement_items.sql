-- Improvement plan items, latest version per item.
{{ config(indexes=[{'columns': ['item_id'], 'unique': True}, {'columns': ['factory_id']}]) }}

with

latest as (
    {{ latest_version(
        source('raw', 'cm_improvement_items'),
        'item_id',
        'updated_at desc nulls last, _batch_id desc, _source_row desc'
    ) }}
)

select
    item_id,
    factory_id,
    cycle,
    compliance_point as compliance_point_raw,
    lower(trim(status)) as status,
    raised_on,
    due_on,
    closed_on,
    updated_at
from latest
