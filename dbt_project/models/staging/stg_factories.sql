-- Factories of the case-management registry, latest version per factory; a latest version with
-- deleted_at set is a deletion (kept, flagged: marts decide what counts).
-- A view (small): snapshot snap_factories reads it, and `dbt snapshot` on its own must see raw.
{{ config(materialized='view', post_hook=[]) }}

with

latest as (
    {{ latest_version(
        source('raw', 'cm_factories'),
        'factory_id',
        'updated_at desc nulls last, _batch_id desc, _source_row desc'
    ) }}
)

select
    factory_id,
    trim(name) as name,
    nullif(trim(os_id), '') as os_id,
    address,
    trim(city) as city,
    trim(province) as province,
    lower(trim(sector)) as sector,
    enrolled_on,
    exited_on,
    exit_reason,
    workers_total,
    workers_female,
    updated_at,
    deleted_at,
    deleted_at is not null as is_deleted
from latest
