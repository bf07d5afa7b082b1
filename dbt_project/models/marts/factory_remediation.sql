-- One row per factory × cycle that has improvement items or a counted assessment (zero counts
-- where there are none). The recheck looks only at the factory's counted assessment of exactly
-- cycle + 1: an item is rechecked when its compliance point was assessed there, and compliant at
-- recheck when no NCQ question of the point had finding 1. Rates are null on a zero denominator.
with

items as (
    select * from {{ ref('fct_improvement_item') }}
),

assessments as (
    select
        factory_id,
        cycle
    from {{ ref('fct_assessment') }}
    where is_counted
),

points as (
    select * from {{ ref('int_factory_cycle_compliance_points') }}
),

factory_cycles as (
    select
        factory_id,
        cycle
    from items
    where factory_id is not null and cycle is not null
    union
    select
        factory_id,
        cycle
    from assessments
),

rechecked as (
    select
        items.item_id,
        next_points.is_noncompliant
    from items
    inner join points as next_points
        on
            items.factory_id = next_points.factory_id
            and items.cycle + 1 = next_points.cycle
            and items.compliance_point = next_points.compliance_point
),

item_counts as (
    select
        items.factory_id,
        items.cycle,
        count(*) as items_raised,
        count(*) filter (where items.is_completed) as items_completed,
        count(*) filter (where items.closed_on_time) as items_closed_on_time,
        count(*) filter (where items.is_overdue) as items_overdue,
        percentile_cont(0.5) within group (order by items.days_to_close) as median_days_to_close,
        count(rechecked.item_id) as items_rechecked,
        count(rechecked.item_id) filter (where not rechecked.is_noncompliant) as items_compliant_at_recheck
    from items
    left join rechecked
        on items.item_id = rechecked.item_id
    group by items.factory_id, items.cycle
)

select
    factory_cycles.factory_id,
    factory_cycles.cycle,
    coalesce(item_counts.items_raised, 0)::int as items_raised,
    coalesce(item_counts.items_completed, 0)::int as items_completed,
    item_counts.items_completed::double precision / nullif(item_counts.items_raised, 0) as completion_rate,
    coalesce(item_counts.items_closed_on_time, 0)::int as items_closed_on_time,
    coalesce(item_counts.items_overdue, 0)::int as items_overdue,
    item_counts.median_days_to_close::double precision as median_days_to_close,
    coalesce(item_counts.items_rechecked, 0)::int as items_rechecked,
    coalesce(item_counts.items_compliant_at_recheck, 0)::int as items_compliant_at_recheck,
    item_counts.items_compliant_at_recheck::double precision
    / nullif(item_counts.items_rechecked, 0) as recheck_compliance_rate
from factory_cycles
left join item_counts
    on factory_cycles.factory_id = item_counts.factory_id and factory_cycles.cycle = item_counts.cycle
