-- factory_wave_outcomes of the marts under pseudonymous factory keys (docs/SURVEYS.md, docs/ACCESS.md).
-- The only survey data in research: one row per factory × wave, never a respondent. Disclosure
-- control: every worker share or mean built from fewer than 10 respondents (those who answered
-- the question) is suppressed (null; named in suppressed_measures, is_suppressed true), and so is
-- female_respondents when respondents are fewer than 10. The manager's figures are the factory's
-- own (turnover, absenteeism, line efficiency) and are published. Only factories of
-- research.dim_factory; only waves with at least k of them; the assessment cycle (0: before the
-- first counted assessment) is withheld where fewer than k factories of the wave share it.
{% set min_respondents = 10 %}
{% set measures = [
    ('share_verbal_abuse_concern', 'concern_verbal_abuse'),
    ('share_sexual_harassment_concern', 'concern_sexual_harassment'),
    ('share_physical_abuse_concern', 'concern_physical_abuse'),
    ('share_low_wages_concern', 'concern_low_wages'),
    ('share_late_payment_concern', 'concern_late_payment'),
    ('share_excessive_overtime_concern', 'concern_excessive_overtime'),
    ('mean_life_satisfaction', 'life_satisfaction'),
    ('mean_hours_last_week', 'hours_last_week'),
    ('share_over_60_hours', 'hours_last_week'),
    ('share_with_payslip', 'has_payslip'),
    ('share_knows_picc', 'knows_picc'),
] %}
with

outcomes as (
    select
        marts_outcomes.*,
        private.pseudonym('factory', marts_outcomes.factory_id::text) as factory_key
    from {{ ref('factory_wave_outcomes') }} as marts_outcomes
),

answered as (
    select
        factory_id,
        wave,
        count(concern_verbal_abuse) as n_share_verbal_abuse_concern,
        count(concern_sexual_harassment) as n_share_sexual_harassment_concern,
        count(concern_physical_abuse) as n_share_physical_abuse_concern,
        count(concern_low_wages) as n_share_low_wages_concern,
        count(concern_late_payment) as n_share_late_payment_concern,
        count(concern_excessive_overtime) as n_share_excessive_overtime_concern,
        count(life_satisfaction) as n_mean_life_satisfaction,
        count(hours_last_week) as n_mean_hours_last_week,
        count(hours_last_week) as n_share_over_60_hours,
        count(has_payslip) as n_share_with_payslip,
        count(knows_picc) as n_share_knows_picc
    from {{ ref('fct_survey_response') }}
    group by factory_id, wave
),

factories as (
    select factory_key from {{ ref('research_dim_factory') }}
),

publishable as (
    select
        outcomes.*,
        {%- for measure, _ in measures %}
            coalesce(answered.n_{{ measure }}, 0) as n_{{ measure }},
        {%- endfor %}
        outcomes.factory_key || ':' || outcomes.wave as row_key,
        coalesce(outcomes.assessment_cycle, 0) as cycle_known
    from outcomes
    inner join factories
        on outcomes.factory_key = factories.factory_key
    left join answered
        on
            outcomes.factory_id = answered.factory_id
            and outcomes.wave = answered.wave
),

published_waves as (
    select wave
    from publishable
    group by wave
    having count(distinct factory_key) >= {{ research_k() }}
),

coarsened as (
    select
        publishable.*,
        publishable.cycle_known as assessment_cycle_published
    from publishable
    inner join published_waves
        on publishable.wave = published_waves.wave
),

anonymised as (
    {{ research_k_anonymise(
        'coarsened', 'row_key', ['assessment_cycle_published'], research_k(), fixed=['wave']
    ) }}
)

select
    coarsened.factory_key,
    coarsened.wave,
    anonymised.assessment_cycle_published as assessment_cycle,
    coarsened.respondents,
    case
        when coarsened.respondents >= {{ min_respondents }} then coarsened.female_respondents
    end as female_respondents,
    {%- for measure, _ in measures %}
        case
            when coarsened.n_{{ measure }} >= {{ min_respondents }} then coarsened.{{ measure }}
        end as {{ measure }},
    {%- endfor %}
    coarsened.monthly_turnover_pct,
    coarsened.absenteeism_pct,
    coarsened.line_efficiency_pct,
    (
        coarsened.respondents < {{ min_respondents }}
        {%- for measure, _ in measures %}
            or coarsened.n_{{ measure }} between 1 and {{ min_respondents - 1 }}
        {%- endfor %}
    ) as is_suppressed,
    nullif(array_to_string(array[
        case
            when coarsened.respondents < {{ min_respondents }} then 'female_respondents'
        end,
        {%- for measure, _ in measures %}
            case
                when coarsened.n_{{ measure }} between 1 and {{ min_respondents - 1 }}
                    then '{{ measure }}'
            end{{ ',' if not loop.last }}
        {%- endfor %}
    ], ', '), '') as suppressed_measures
from coarsened
inner join anonymised
    on coarsened.row_key = anonymised.row_key
