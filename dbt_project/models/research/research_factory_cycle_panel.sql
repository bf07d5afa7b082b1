-- The factory × cycle panel of the marts under pseudonymous factory keys. The assessment id and
-- exact start date are left out (they identify the assessment in the programme's systems); the
-- start year is published only where the factory's enrolment year is (start year minus months
-- since enrolment would give the enrolment year back).
with

panel as (
    select
        marts_panel.*,
        private.pseudonym('factory', marts_panel.factory_id::text) as factory_key
    from {{ ref('factory_cycle_panel') }} as marts_panel
),

factories as (
    select * from {{ ref('research_dim_factory') }}
)

select
    panel.factory_key,
    panel.cycle,
    case
        when factories.enrolment_year is not null then extract(year from panel.start_date)::int
    end as start_year,
    panel.months_since_enrolment,
    panel.cps_assessed,
    panel.cps_noncompliant,
    panel.cp_noncompliance_rate::double precision as cp_noncompliance_rate,
    panel.ncq_assessed,
    panel.ncq_noncompliant,
    panel.advisory_visits_since_previous,
    panel.training_participants_since_previous,
    panel.female_training_participants_since_previous
from panel
left join factories
    on panel.factory_key = factories.factory_key
