-- Every factory: the registry's (deleted ones flagged), those seen only in assessment exports
-- (in_registry false, name from the export) and, as unknown members, those only named by a
-- case-management row whose factory is not in the registry (an orphan visit, session, participant,
-- PICC meeting or improvement item: in_registry false, every attribute null). So every fact's
-- factory_id resolves and orphan rows stay in the facts (warned in staging, docs/MARTS.md).
with

registry as (
    select * from {{ ref('stg_factories') }}
),

export_factories as (
    select * from {{ ref('int_export_factories') }}
),

referenced as (
    select factory_id from {{ ref('stg_advisory_visits') }}
    union
    select factory_id from {{ ref('stg_training_sessions') }}
    union
    select factory_id from {{ ref('stg_training_participants') }}
    union
    select factory_id from {{ ref('stg_picc_meetings') }}
    union
    select factory_id from {{ ref('stg_improvement_items') }}
),

known as (
    select coalesce(registry.factory_id, export_factories.factory_id) as factory_id
    from registry
    full outer join export_factories
        on registry.factory_id = export_factories.factory_id
),

unknown_members as (
    select referenced.factory_id
    from referenced
    left join known
        on referenced.factory_id = known.factory_id
    where
        referenced.factory_id is not null
        and known.factory_id is null
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

union all

select
    unknown_members.factory_id,
    null::text as name,
    null::text as os_id,
    null::text as city,
    null::text as province,
    null::text as sector,
    null::date as enrolled_on,
    null::date as exited_on,
    null::int as workers_total,
    null::int as workers_female,
    null::double precision as female_worker_share,
    0 as brand_count,
    false as in_registry,
    false as is_deleted,
    false as is_obsolete
from unknown_members
