-- Non-compliance rate per panel × cycle × compliance point: non-compliant factories ÷ assessed
-- factories, over counted assessments. Panel `all` uses every factory; `balanced_<c>` only the
-- factories with a counted assessment in every cycle 1…c, and has rows for cycles 1…c.
with

factory_points as (
    select * from {{ ref('int_factory_cycle_compliance_points') }}
),

counted as (
    select distinct
        factory_id,
        cycle
    from {{ ref('fct_assessment') }}
    where is_counted
),

panel_sizes as (
    select generate_series(2, max(cycle)) as last_cycle
    from counted
),

balanced_members as (
    select
        'balanced_' || panel_sizes.last_cycle as panel,
        panel_sizes.last_cycle,
        counted.factory_id
    from panel_sizes
    inner join counted
        on counted.cycle between 1 and panel_sizes.last_cycle
    group by panel_sizes.last_cycle, counted.factory_id
    having count(distinct counted.cycle) = panel_sizes.last_cycle
),

members as (
    select distinct
        'all' as panel,
        null::int as last_cycle,
        factory_id
    from counted
    union all
    select
        panel,
        last_cycle,
        factory_id
    from balanced_members
)

select
    members.panel,
    factory_points.cycle,
    factory_points.cluster,
    factory_points.compliance_point,
    count(*)::int as factories_assessed,
    (count(*) filter (where factory_points.is_noncompliant))::int as factories_noncompliant,
    (count(*) filter (where factory_points.is_noncompliant))::double precision / count(*) as noncompliance_rate
from members
inner join factory_points
    on
        members.factory_id = factory_points.factory_id
        and (members.last_cycle is null or factory_points.cycle between 1 and members.last_cycle)
group by
    members.panel,
    factory_points.cycle,
    factory_points.cluster,
    factory_points.compliance_point
