-- Which brand sources from which factory, latest version per (factory, brand).
{{ config(indexes=[{'columns': ['factory_id', 'brand_id'], 'unique': True}]) }}

with

latest as (
    {{ latest_version(
        source('raw', 'cm_factory_brands'),
        'factory_id, brand_id',
        'updated_at desc nulls last, _batch_id desc, _source_row desc'
    ) }}
)

select
    factory_id,
    brand_id,
    since as since_date,
    until as until_date,
    updated_at
from latest
