-- cp_noncompliance_rate of the marts with disclosure control. A cell built from fewer than k
-- factories is suppressed (primary); so is a cell whose factories differ by 1 … k-1 from a published
-- cell of a larger panel at the same cycle and point (complementary): panels are nested (all ⊇
-- balanced_2 ⊇ balanced_3 …), and two published cells would otherwise describe the few factories
-- in one but not the other. Suppressed: factories_noncompliant and noncompliance_rate null,
-- is_suppressed true; factories_assessed stays (it says nothing about compliance).
with

rates as (
    select
        marts_rates.*,
        case
            when marts_rates.panel = 'all' then 1
            else split_part(marts_rates.panel, '_', 2)::int
        end as panel_order
    from {{ ref('cp_noncompliance_rate') }} as marts_rates
),

decided as (
    {{ research_nested_suppression(
        'rates', ['cycle', 'cluster', 'compliance_point'], 'panel_order', 'factories_assessed', research_k()
    ) }}
)

select
    panel,
    cycle,
    cluster,
    compliance_point,
    factories_assessed,
    case when suppression is null then factories_noncompliant end as factories_noncompliant,
    case when suppression is null then noncompliance_rate::double precision end as noncompliance_rate,
    suppression is not null as is_suppressed,
    suppression as suppression_reason
from decided
