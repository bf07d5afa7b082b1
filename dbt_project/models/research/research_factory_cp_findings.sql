-- The released panel behind cp_noncompliance_rate: one row per factory × cycle × compliance point
-- on which the factory's counted assessment of that cycle was assessed (any NCQ finding 0 or 1),
-- non-compliant when any NCQ finding of the point was 1. Grouping these rows by cycle and point
-- gives the marts' rates back (the release README shows how, for every panel) wherever they are
-- published. As in factory_cycle_panel, a cycle reached by fewer than k factories is left out.
with

published_cycles as (
    select cycle
    from {{ ref('factory_cycle_panel') }}
    group by cycle
    having count(distinct factory_id) >= {{ research_k() }}
)

select
    private.pseudonym('factory', findings.factory_id::text) as factory_key,
    findings.cycle,
    findings.cluster,
    findings.compliance_point,
    findings.is_noncompliant
from {{ ref('int_factory_cycle_compliance_points') }} as findings
inner join published_cycles on findings.cycle = published_cycles.cycle
