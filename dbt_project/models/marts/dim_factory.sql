-- Every factory: the registry's (deleted ones flagged) and those seen only in assessment exports
-- (in_registry false), so every fact's factory_id resolves.
with

registry as (
    select * from {{ ref('stg_factories') }}
),

export_factories as (
    select * from {{ ref('int_export_factories') }}
),

brand_counts as (
    select
        factory_id,
        count(distinct brand_id) as brand_count
    from {{ ref('stg_factory_brands') }}
    where until_date is null
    group by factory_id
)

select
    coalesce(registry.factory_id, export_factories.factory_id) as factory_id,
    coalesce(registry.name, export_factories.factory_name) as name,
    registry.os_id,
    registry.city,
    registry.province,
    registry.sector,
    registry.enrolled_on,
    registry.exited_on,
    registry.workers_total,
    registry.workers_female,
    registry.workers_female::double precision / nullif(registry.workers_total, 0) as female_worker_share,
    coalesce(brand_counts.brand_count, 0)::int as brand_count,
    registry.factory_id is not null as in_registry,
    coalesce(registry.is_deleted, false) as is_deleted,
    coalesce(export_factories.is_obsolete, false) as is_obsolete
from registry
full outer join export_factories
    on registry.factory_id = export_factories.factory_id
left join brand_counts
    on coalesce(registry.factory_id, export_factories.factory_id) = brand_counts.factory_id
