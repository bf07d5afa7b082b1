-- Programme KPIs per period: `all`, and each calendar year from the first to the last year in
-- which a factory enrolled or an assessment, visit or training session took place. A year row
-- counts what falls in that year; deleted rows never count.
with

factories as (
    select * from {{ ref('stg_factories') }}
    where not is_deleted
),

assessments as (
    select * from {{ ref('fct_assessment') }}
    where is_counted
),

visits as (
    select * from {{ ref('fct_advisory_visit') }}
),

sessions as (
    select * from {{ ref('fct_training_session') }}
),

participations as (
    select * from {{ ref('int_counted_participations') }}
),

event_years as (
    select extract(year from enrolled_on)::int as event_year from factories
    union
    select extract(year from start_date)::int as event_year from assessments
    union
    select extract(year from visit_date)::int as event_year from visits
    union
    select extract(year from starts_on)::int as event_year from sessions
),

periods as (
    select
        'all' as period,
        null::date as period_start,
        null::date as period_end
    union all
    select
        year_number::text as period,
        make_date(year_number, 1, 1) as period_start,
        make_date(year_number, 12, 31) as period_end
    from generate_series(
        (select min(event_year) from event_years),
        (select max(event_year) from event_years)
    ) as year_number
),

engaged as (
    select
        periods.period,
        count(factories.factory_id) as factories_engaged
    from periods
    left join factories
        on
            (periods.period_end is null or periods.period_end >= factories.enrolled_on)
            and (
                periods.period_start is null
                or factories.exited_on is null
                or periods.period_start <= factories.exited_on
            )
    group by periods.period
),

assessment_counts as (
    select
        periods.period,
        count(assessments.assessment_id) as assessments
    from periods
    left join assessments
        on {{ falls_in_period('assessments.start_date') }}
    group by periods.period
),

visit_counts as (
    select
        periods.period,
        count(visits.visit_id) as advisory_visits
    from periods
    left join visits
        on {{ falls_in_period('visits.visit_date') }}
    group by periods.period
),

session_counts as (
    select
        periods.period,
        count(sessions.session_id) as training_sessions
    from periods
    left join sessions
        on {{ falls_in_period('sessions.starts_on') }}
    group by periods.period
),

participation_counts as (
    select
        periods.period,
        count(participations.participant_id) as training_participations,
        count(distinct participations.person_ref) as training_participants,
        count(distinct participations.person_ref) filter (
            where participations.gender = 'female'
        ) as female_participants
    from periods
    left join participations
        on {{ falls_in_period('participations.starts_on') }}
    group by periods.period
)

select
    periods.period,
    periods.period_start,
    periods.period_end,
    engaged.factories_engaged::int as factories_engaged,
    assessment_counts.assessments::int as assessments,
    visit_counts.advisory_visits::int as advisory_visits,
    session_counts.training_sessions::int as training_sessions,
    participation_counts.training_participants::int as training_participants,
    participation_counts.training_participations::int as training_participations,
    participation_counts.female_participants::double precision
    / nullif(participation_counts.training_participants, 0) as female_participant_share
from periods
inner join engaged on periods.period = engaged.period
inner join assessment_counts on periods.period = assessment_counts.period
inner join visit_counts on periods.period = visit_counts.period
inner join session_counts on periods.period = session_counts.period
inner join participation_counts on periods.period = participation_counts.period
