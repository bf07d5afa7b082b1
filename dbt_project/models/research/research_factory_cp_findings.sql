-- The released panel behind cp_noncompliance_rate: one row per factory × cycle × compliance point
-- on which the factory's counted assessment of that cycle was assessed (any NCQ finding 0 or 1),
-- non-compliant when any NCQ finding of the point was 1. Grouping these rows by cycle and point
-- gives the marts' rates back (the release README shows how, for every panel).
select
    private.pseudonym('factory', factory_id::text) as factory_key,
    cycle,
    cluster,
    compliance_point,
    is_noncompliant
from {{ ref('int_factory_cycle_compliance_points') }}
