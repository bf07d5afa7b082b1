-- factory_remediation of the marts under pseudonymous factory keys (docs/ACCESS.md): factories of
-- research.dim_factory only (retired "(Obsolete)" records left out), and only cycles reached by at
-- least k of them (a cycle of fewer factories is not published at the factory level).
with

remediation as (
    select
        marts_remediation.*,
        private.pseudonym('factory', marts_remediation.factory_id::text) as factory_key
    from {{ ref('factory_remediation') }} as marts_remediation
),

factories as (
    select * from {{ ref('research_dim_factory') }}
),

known as (
    select remediation.*
    from remediation
    inner join factories
        on remediation.factory_key = factories.factory_key
),

published_cycles as (
    select cycle
    from known
    group by cycle
    having count(distinct factory_key) >= {{ research_k() }}
)

select
    known.factory_key,
    known.cycle,
    known.items_raised,
    known.items_completed,
    known.completion_rate::double precision as completion_rate,
    known.items_closed_on_time,
    known.items_overdue,
    known.median_days_to_close::double precision as median_days_to_close,
    known.items_rechecked,
    known.items_compliant_at_recheck,
    known.recheck_compliance_rate::double precision as recheck_compliance_rate
from known
inner join published_cycles
    on known.cycle = published_cycles.cycle
