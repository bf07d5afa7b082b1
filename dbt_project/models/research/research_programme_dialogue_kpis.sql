-- The social dialogue, remediation and gender columns of programme_kpis, with the disclosure control
-- of research.programme_kpis (docs/ACCESS.md). Each figure is a cell built from the factories
-- behind it (whose PICC met; whose items were raised or completed; whose women supervisors were
-- trained) in the period. A cell built from 1 … k-1 factories is suppressed (null); a cell of no
-- factory (a zero) describes nobody and stays. Additive figures (meetings, items raised, items
-- completed) of the years add up to `all`: where years are suppressed, further years (fewest
-- factories first) are suppressed until the suppressed years together cover at least k factories,
-- or else `all` is.
with

kpis as (
    select * from {{ ref('programme_kpis') }}
),

periods as (
    select
        period,
        period_start,
        period_end
    from kpis
),

meetings as (
    select * from {{ ref('fct_picc_meeting') }}
),

items as (
    select * from {{ ref('fct_improvement_item') }}
),

-- the rows behind women_supervisors_trained (as programme_kpis counts them)
women_supervisors as (
    select
        participations.factory_id,
        participations.starts_on
    from {{ ref('int_counted_participations') }} as participations
    inner join {{ ref('stg_training_participants') }} as participants
        on participations.participant_id = participants.participant_id
    inner join {{ ref('stg_training_sessions') }} as training_sessions
        on participations.session_id = training_sessions.session_id
    where
        participations.gender = 'female'
        and participants.role = 'line_supervisor'
        and training_sessions.course_code = 'SST'
),

contributors as (
    select
        'picc_meetings' as measure,
        periods.period,
        meetings.factory_id
    from periods
    inner join meetings
        on {{ falls_in_period('meetings.held_on') }}
    union all
    select
        'improvement_items_raised' as measure,
        periods.period,
        items.factory_id
    from periods
    inner join items
        on {{ falls_in_period('items.raised_on') }}
    union all
    select
        'improvement_items_completed' as measure,
        periods.period,
        items.factory_id
    from periods
    inner join items
        on items.is_completed and {{ falls_in_period('items.closed_on') }}
    union all
    select
        'women_supervisors_trained' as measure,
        periods.period,
        women_supervisors.factory_id
    from periods
    inner join women_supervisors
        on {{ falls_in_period('women_supervisors.starts_on') }}
),

measures as (
    select
        measure,
        measure <> 'women_supervisors_trained' as is_additive
    from (
        values ('picc_meetings'), ('improvement_items_raised'), ('improvement_items_completed'),
        ('women_supervisors_trained')
    ) as m (measure)
),

cells as (
    select
        measures.measure,
        measures.is_additive,
        periods.period,
        count(distinct contributors.factory_id) as factories,
        count(distinct contributors.factory_id) between 1 and {{ research_k() }} - 1 as is_primary
    from measures
    cross join periods
    left join contributors
        on measures.measure = contributors.measure and periods.period = contributors.period
    group by measures.measure, measures.is_additive, periods.period
),

-- additive measures with a suppressed year while their `all` is published
exposed as (
    select years.measure
    from cells as years
    inner join cells as total
        on years.measure = total.measure and total.period = 'all'
    where years.is_additive and years.period <> 'all' and not total.is_primary
    group by years.measure
    having bool_or(years.is_primary)
),

candidates as (
    select
        cells.measure,
        cells.period,
        row_number() over (partition by cells.measure order by cells.factories, cells.period) as pick
    from cells
    inner join exposed on cells.measure = exposed.measure
    where cells.period <> 'all' and not cells.is_primary and cells.factories > 0
),

steps as (
    select
        measure,
        0 as step
    from exposed
    union all
    select
        measure,
        pick
    from candidates
),

step_coverage as (
    select
        steps.measure,
        steps.step,
        count(distinct contributors.factory_id) as factories
    from steps
    inner join contributors
        on steps.measure = contributors.measure
    where
        contributors.period in (
            select cells.period from cells
            where cells.measure = steps.measure and cells.period <> 'all' and cells.is_primary
        )
        or contributors.period in (
            select candidates.period from candidates
            where candidates.measure = steps.measure and candidates.pick <= steps.step
        )
    group by steps.measure, steps.step
),

enough as (
    select
        measure,
        min(step) as step
    from step_coverage
    where factories >= {{ research_k() }}
    group by measure
),

decided as (
    select
        cells.measure,
        cells.period,
        case
            when cells.is_primary then 'primary'
            when candidates.pick <= enough.step then 'complementary'
            when cells.period = 'all' and exposed.measure is not null and enough.measure is null
                then 'complementary'
        end as suppression
    from cells
    left join exposed on cells.measure = exposed.measure
    left join enough on cells.measure = enough.measure
    left join candidates on cells.measure = candidates.measure and cells.period = candidates.period
),

suppressed as (
    select
        period,
        bool_or(measure = 'picc_meetings' and suppression is not null) as meetings,
        bool_or(measure = 'improvement_items_raised' and suppression is not null) as raised,
        bool_or(measure = 'improvement_items_completed' and suppression is not null) as completed,
        bool_or(measure = 'women_supervisors_trained' and suppression is not null) as supervisors,
        string_agg(measure || ':' || suppression, ', ' order by measure) as reasons
    from decided
    group by period
)

select
    kpis.period,
    case when not suppressed.meetings then kpis.picc_meetings end as picc_meetings,
    case when not suppressed.meetings then kpis.factories_with_picc_meeting end as factories_with_picc_meeting,
    case when not suppressed.raised then kpis.improvement_items_raised end as improvement_items_raised,
    case when not suppressed.completed then kpis.improvement_items_completed end as improvement_items_completed,
    case when not suppressed.supervisors then kpis.women_supervisors_trained end as women_supervisors_trained,
    suppressed.reasons is not null as is_suppressed,
    suppressed.reasons as suppressed_cells
from kpis
inner join suppressed on kpis.period = suppressed.period
