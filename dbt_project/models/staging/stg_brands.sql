-- Brands, latest version per brand.
{{ config(indexes=[{'columns': ['brand_id'], 'unique': True}]) }}

with

latest as (
    {{ latest_version(
        source('raw', 'cm_brands'),
        'brand_id',
        'updated_at desc nulls last, _batch_id desc, _source_row desc'
    ) }}
)

select
    brand_id,
    trim(name) as name,
    updated_at
from latest
