-- Programme KPIs per period: `all`, and each calendar year from the first to the last year in
-- which a factory enrolled or an assessment, visit or training session took place. A year row
-- counts what falls in that year; deleted rows never count. PICC meetings (by held_on) and
-- improvement items (raised by raised_on, completed by closed_on) count whatever the factory.
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

meetings as (
    select * from {{ ref('fct_picc_meeting') }}
),

items as (
    select * from {{ ref('fct_improvement_item') }}
),

-- female line supervisors who attended an SST session: role and gender of the participation row
women_supervisors as (
    select
        participations.person_ref,
        participations.starts_on
    from participations
    inner join {{ ref('stg_training_participants') }} as participants
        on participations.participant_id = participants.participant_id
    inner join {{ ref('stg_training_sessions') }} as training_sessions
        on participations.session_id = training_sessions.session_id
    where
        participations.gender = 'female'
        and participants.role = 'line_supervisor'
        and training_sessions.course_code = 'SST'
),

event_years as (
    select extract(year from enrolled_on)::int as event_year from factories
    union
    select extract(year from start_date)::int as event_year from assessments
    union
    select extract(year from visit_date)::int as event_year from visits
    union
    select extract(year from starts_on)::int as event_year from sessions
    union
    select extract(year from held_on)::int as event_year from meetings
    union
    select extract(year from raised_on)::int as event_year from items
    union
    select extract(year from closed_on)::int as event_year from items
    where is_completed
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
),

meeting_counts as (
    select
        periods.period,
        count(meetings.meeting_id) as picc_meetings,
        count(distinct meetings.factory_id) as factories_with_picc_meeting
    from periods
    left join meetings
        on {{ falls_in_period('meetings.held_on') }}
    group by periods.period
),

raised_counts as (
    select
        periods.period,
        count(items.item_id) as improvement_items_raised
    from periods
    left join items
        on {{ falls_in_period('items.raised_on') }}
    group by periods.period
),

completed_counts as (
    select
        periods.period,
        count(items.item_id) as improvement_items_completed
    from periods
    left join items
        on items.is_completed and {{ falls_in_period('items.closed_on') }}
    group by periods.period
),

supervisor_counts as (
    select
        periods.period,
        count(distinct women_supervisors.person_ref) as women_supervisors_trained
    from periods
    left join women_supervisors
        on {{ falls_in_period('women_supervisors.starts_on') }}
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
    / nullif(participation_counts.training_participants, 0) as female_participant_share,
    meeting_counts.picc_meetings::int as picc_meetings,
    meeting_counts.factories_with_picc_meeting::int as factories_with_picc_meeting,
    raised_counts.improvement_items_raised::int as improvement_items_raised,
    completed_counts.improvement_items_completed::int as improvement_items_completed,
    supervisor_counts.women_supervisors_trained::int as women_supervisors_trained
from periods
inner join engaged on periods.period = engaged.period
inner join assessment_counts on periods.period = assessment_counts.period
inner join visit_counts on periods.period = visit_counts.period
inner join session_counts on periods.period = session_counts.period
inner join participation_counts on periods.period = participation_counts.period
inner join meeting_counts on periods.period = meeting_counts.period
inner join raised_counts on periods.period = raised_counts.period
inner join completed_counts on periods.period = completed_counts.period
inner join supervisor_counts on periods.period = supervisor_counts.period
