-- Each public factory's latest counted assessment (ephemeral: only the two public tables are
-- published). Rules of the transparency page: latest counted assessment in cycle 2 or later;
-- factory in the registry, not deleted, not exited, not obsolete.
with

factories as (
    select * from {{ ref('dim_factory') }}
    where
        in_registry
        and not is_deleted
        and not is_obsolete
        and exited_on is null
),

latest as (
    select distinct on (factory_id)
        assessment_id,
        factory_id,
        cycle,
        start_date
    from {{ ref('fct_assessment') }}
    where is_counted
    order by factory_id asc, cycle desc, start_date desc
)

select latest.*
from latest
inner join factories on latest.factory_id = factories.factory_id
where latest.cycle >= 2
