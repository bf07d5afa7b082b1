-- One row per factory × survey wave with at least one consenting submission (worker or manager):
-- the workers' outcomes (shares among those who answered the question; refusals and answers
-- outside the scale do not count in the denominator), the manager's figures (the factory's
-- latest consenting manager submission of the wave) and the assessment cycle in force when the
-- wave began: the factory's latest counted assessment starting on or before the wave's first
-- consenting submission (null when there is none yet). Non-consenting submissions count nowhere.
with

workers as (
    select * from {{ ref('fct_survey_response') }}
),

consenting_managers as (
    select * from {{ ref('stg_survey_manager_responses') }}
    where is_consenting and factory_id is not null and wave is not null
),

managers as (
    select distinct on (factory_id, wave)
        factory_id,
        wave,
        monthly_turnover_pct,
        absenteeism_pct,
        line_efficiency_pct,
        min(submitted_on) over (partition by factory_id, wave) as first_submitted_on
    from consenting_managers
    order by factory_id asc, wave asc, submitted_at desc, response_id desc
),

worker_outcomes as (
    select
        factory_id,
        wave,
        min(submitted_on) as first_submitted_on,
        count(*) as respondents,
        count(*) filter (where gender = 'female') as female_respondents,
        {%- for concern in ['verbal_abuse', 'sexual_harassment', 'physical_abuse', 'low_wages',
                            'late_payment', 'excessive_overtime'] %}
            count(*) filter (where concern_{{ concern }} >= 2)::double precision
            / nullif(count(concern_{{ concern }}), 0) as share_{{ concern }}_concern,
        {%- endfor %}
        avg(life_satisfaction)::double precision as mean_life_satisfaction,
        avg(hours_last_week)::double precision as mean_hours_last_week,
        count(*) filter (where hours_last_week > 60)::double precision
        / nullif(count(hours_last_week), 0) as share_over_60_hours,
        count(*) filter (where has_payslip)::double precision
        / nullif(count(has_payslip), 0) as share_with_payslip,
        count(*) filter (where knows_picc = 'yes')::double precision
        / nullif(count(knows_picc), 0) as share_knows_picc
    from workers
    where factory_id is not null and wave is not null
    group by factory_id, wave
),

factory_waves as (
    select
        coalesce(worker_outcomes.factory_id, managers.factory_id) as factory_id,
        coalesce(worker_outcomes.wave, managers.wave) as wave,
        least(worker_outcomes.first_submitted_on, managers.first_submitted_on) as first_submitted_on
    from worker_outcomes
    full outer join managers
        on
            worker_outcomes.factory_id = managers.factory_id
            and worker_outcomes.wave = managers.wave
),

assessments as (
    select
        factory_id,
        cycle,
        start_date
    from {{ ref('fct_assessment') }}
    where is_counted
),

linked as (
    select distinct on (factory_waves.factory_id, factory_waves.wave)
        factory_waves.factory_id,
        factory_waves.wave,
        assessments.cycle as assessment_cycle
    from factory_waves
    left join assessments
        on
            factory_waves.factory_id = assessments.factory_id
            and factory_waves.first_submitted_on >= assessments.start_date
    order by factory_waves.factory_id asc, factory_waves.wave asc, assessments.start_date desc nulls last
)

select
    factory_waves.factory_id,
    factory_waves.wave,
    factory_waves.first_submitted_on,
    coalesce(worker_outcomes.respondents, 0)::int as respondents,
    coalesce(worker_outcomes.female_respondents, 0)::int as female_respondents,
    worker_outcomes.share_verbal_abuse_concern,
    worker_outcomes.share_sexual_harassment_concern,
    worker_outcomes.share_physical_abuse_concern,
    worker_outcomes.share_low_wages_concern,
    worker_outcomes.share_late_payment_concern,
    worker_outcomes.share_excessive_overtime_concern,
    worker_outcomes.mean_life_satisfaction,
    worker_outcomes.mean_hours_last_week,
    worker_outcomes.share_over_60_hours,
    worker_outcomes.share_with_payslip,
    worker_outcomes.share_knows_picc,
    managers.monthly_turnover_pct::double precision as monthly_turnover_pct,
    managers.absenteeism_pct::double precision as absenteeism_pct,
    managers.line_efficiency_pct::double precision as line_efficiency_pct,
    linked.assessment_cycle::int as assessment_cycle
from factory_waves
left join worker_outcomes
    on
        factory_waves.factory_id = worker_outcomes.factory_id
        and factory_waves.wave = worker_outcomes.wave
left join managers
    on
        factory_waves.factory_id = managers.factory_id
        and factory_waves.wave = managers.wave
left join linked
    on
        factory_waves.factory_id = linked.factory_id
        and factory_waves.wave = linked.wave
