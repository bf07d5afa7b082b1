-- The factory × cycle panel of the marts under pseudonymous factory keys. The assessment id and
-- exact start date are left out (they identify the assessment in the programme's systems).
-- Disclosure control (docs/ACCESS.md): months since enrolment in 6-month bands ('0-5', '6-11', …);
-- start year and band are withheld where the factory's enrolment year is (together they would give
-- it back); then, within each cycle, the band and then the start year are withheld until every
-- published (cycle, start year, band) is shared by at least k factories. A cycle reached by fewer
-- than k factories is not published at the factory level (its rates are suppressed anyway).
-- Survey outcomes of the wave in the window come from research.factory_wave_outcomes, already
-- suppressed there (a share or mean from fewer than 10 respondents is null); a wave that table does
-- not publish leaves them null.
with

panel as (
    select
        marts_panel.*,
        private.pseudonym('factory', marts_panel.factory_id::text) as factory_key
    from {{ ref('factory_cycle_panel') }} as marts_panel
),

factories as (
    select * from {{ ref('research_dim_factory') }}
),

published_cycles as (
    select cycle
    from panel
    group by cycle
    having count(distinct factory_key) >= {{ research_k() }}
),

coarsened as (
    select
        panel.*,
        panel.factory_key || ':' || panel.cycle as row_key,
        case
            when factories.enrolment_year is not null then extract(year from panel.start_date)::int
        end as start_year,
        case
            when factories.enrolment_year is null then null
            when panel.months_since_enrolment is null then 'unknown'
            else {{ research_month_band('panel.months_since_enrolment') }}
        end as months_since_enrolment_band
    from panel
    inner join published_cycles on panel.cycle = published_cycles.cycle
    left join factories
        on panel.factory_key = factories.factory_key
),

wave_outcomes as (
    select * from {{ ref('research_factory_wave_outcomes') }}
),

anonymised as (
    {{ research_k_anonymise(
        'coarsened', 'row_key', ['start_year', 'months_since_enrolment_band'], research_k(), fixed=['cycle']
    ) }}
)

select
    coarsened.factory_key,
    coarsened.cycle,
    anonymised.start_year,
    anonymised.months_since_enrolment_band,
    coarsened.cps_assessed,
    coarsened.cps_noncompliant,
    coarsened.cp_noncompliance_rate::double precision as cp_noncompliance_rate,
    coarsened.ncq_assessed,
    coarsened.ncq_noncompliant,
    coarsened.advisory_visits_since_previous,
    coarsened.training_participants_since_previous,
    coarsened.female_training_participants_since_previous,
    wave_outcomes.wave as survey_wave,
    wave_outcomes.respondents as survey_respondents,
    wave_outcomes.share_verbal_abuse_concern,
    wave_outcomes.share_sexual_harassment_concern,
    wave_outcomes.share_physical_abuse_concern,
    wave_outcomes.share_low_wages_concern,
    wave_outcomes.share_late_payment_concern,
    wave_outcomes.share_excessive_overtime_concern,
    wave_outcomes.mean_life_satisfaction,
    wave_outcomes.mean_hours_last_week,
    wave_outcomes.share_over_60_hours,
    wave_outcomes.share_with_payslip,
    wave_outcomes.share_knows_picc,
    wave_outcomes.monthly_turnover_pct,
    wave_outcomes.absenteeism_pct,
    wave_outcomes.line_efficiency_pct
from coarsened
inner join anonymised on coarsened.row_key = anonymised.row_key
left join wave_outcomes
    on
        coarsened.factory_key = wave_outcomes.factory_key
        and coarsened.survey_wave = wave_outcomes.wave
