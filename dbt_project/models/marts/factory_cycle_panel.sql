-- One row per factory × cycle (its counted assessment), with compliance and the services the
-- factory received "since previous": after the previous counted assessment's start date (cycle 1:
-- everything earlier) up to and including this assessment's start date. PICC meetings use the same
-- window; improvement items open at the start: any cycle's items raised strictly before the start
-- date and not closed on or before it. Survey outcomes: the factory's survey wave whose first
-- consenting submission falls in the same window (the latest wave if several; none: null), from
-- factory_wave_outcomes (so that wave's own assessment_cycle there is the previous cycle).
with

-- materialized: referenced three times; re-planning the window per join was the slow part
assessments as materialized (
    select
        assessment_id,
        factory_id,
        cycle,
        start_date,
        ncq_assessed,
        ncq_noncompliant,
        lag(start_date) over (partition by factory_id order by cycle) as previous_start_date
    from {{ ref('fct_assessment') }}
    where is_counted
),

factories as (
    select * from {{ ref('stg_factories') }}
),

points as (
    select
        assessment_id,
        count(*) as cps_assessed,
        count(*) filter (where is_noncompliant) as cps_noncompliant
    from {{ ref('int_factory_cycle_compliance_points') }}
    group by assessment_id
),

visits as (
    select
        assessments.assessment_id,
        count(advisory_visits.visit_id) as advisory_visits
    from assessments
    inner join {{ ref('fct_advisory_visit') }} as advisory_visits
        on
            assessments.factory_id = advisory_visits.factory_id
            and assessments.start_date >= advisory_visits.visit_date
            and (
                assessments.previous_start_date is null
                or assessments.previous_start_date < advisory_visits.visit_date
            )
    group by assessments.assessment_id
),

training as (
    select
        assessments.assessment_id,
        count(distinct participations.person_ref) as participants,
        count(distinct participations.person_ref) filter (
            where participations.gender = 'female'
        ) as female_participants
    from assessments
    inner join {{ ref('int_counted_participations') }} as participations
        on
            assessments.factory_id = participations.factory_id
            and assessments.start_date >= participations.starts_on
            and (
                assessments.previous_start_date is null
                or assessments.previous_start_date < participations.starts_on
            )
    group by assessments.assessment_id
),

meetings as (
    select
        assessments.assessment_id,
        count(picc_meetings.meeting_id) as picc_meetings
    from assessments
    inner join {{ ref('fct_picc_meeting') }} as picc_meetings
        on
            assessments.factory_id = picc_meetings.factory_id
            and assessments.start_date >= picc_meetings.held_on
            and (
                assessments.previous_start_date is null
                or assessments.previous_start_date < picc_meetings.held_on
            )
    group by assessments.assessment_id
),

survey_waves as (
    select distinct on (assessments.assessment_id)
        assessments.assessment_id,
        outcomes.*
    from assessments
    inner join {{ ref('factory_wave_outcomes') }} as outcomes
        on
            assessments.factory_id = outcomes.factory_id
            and assessments.start_date >= outcomes.first_submitted_on
            and (
                assessments.previous_start_date is null
                or assessments.previous_start_date < outcomes.first_submitted_on
            )
    order by assessments.assessment_id asc, outcomes.wave desc
),

open_items as (
    select
        assessments.assessment_id,
        count(items.item_id) as open_items
    from assessments
    inner join {{ ref('fct_improvement_item') }} as items
        on
            assessments.factory_id = items.factory_id
            and assessments.start_date > items.raised_on
            and (items.closed_on is null or assessments.start_date < items.closed_on)
    group by assessments.assessment_id
)

select
    assessments.factory_id,
    assessments.cycle,
    assessments.assessment_id,
    assessments.start_date,
    (
        extract(year from age(assessments.start_date, factories.enrolled_on)) * 12
        + extract(month from age(assessments.start_date, factories.enrolled_on))
    )::int as months_since_enrolment,
    coalesce(points.cps_assessed, 0)::int as cps_assessed,
    coalesce(points.cps_noncompliant, 0)::int as cps_noncompliant,
    points.cps_noncompliant::double precision / nullif(points.cps_assessed, 0) as cp_noncompliance_rate,
    assessments.ncq_assessed::int as ncq_assessed,
    assessments.ncq_noncompliant::int as ncq_noncompliant,
    coalesce(visits.advisory_visits, 0)::int as advisory_visits_since_previous,
    coalesce(training.participants, 0)::int as training_participants_since_previous,
    coalesce(training.female_participants, 0)::int as female_training_participants_since_previous,
    coalesce(meetings.picc_meetings, 0)::int as picc_meetings_since_previous,
    coalesce(open_items.open_items, 0)::int as improvement_items_open_at_start,
    survey_waves.wave as survey_wave,
    survey_waves.respondents as survey_respondents,
    survey_waves.share_verbal_abuse_concern,
    survey_waves.share_sexual_harassment_concern,
    survey_waves.share_physical_abuse_concern,
    survey_waves.share_low_wages_concern,
    survey_waves.share_late_payment_concern,
    survey_waves.share_excessive_overtime_concern,
    survey_waves.mean_life_satisfaction,
    survey_waves.mean_hours_last_week,
    survey_waves.share_over_60_hours,
    survey_waves.share_with_payslip,
    survey_waves.share_knows_picc,
    survey_waves.monthly_turnover_pct,
    survey_waves.absenteeism_pct,
    survey_waves.line_efficiency_pct
from assessments
left join factories
    on assessments.factory_id = factories.factory_id
left join points
    on assessments.assessment_id = points.assessment_id
left join visits
    on assessments.assessment_id = visits.assessment_id
left join training
    on assessments.assessment_id = training.assessment_id
left join meetings
    on assessments.assessment_id = meetings.assessment_id
left join open_items
    on assessments.assessment_id = open_items.assessment_id
left join survey_waves
    on assessments.assessment_id = survey_waves.assessment_id
