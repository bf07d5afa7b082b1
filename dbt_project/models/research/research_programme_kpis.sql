-- programme_kpis of the marts with disclosure control. Each figure is a cell built from the
-- factories behind it (engaged; assessed; visited; whose people or sessions were trained in the
-- period). A cell built from 1 … k-1 factories is suppressed (null); a cell of no factory (a zero)
-- describes nobody and stays. Additive figures (assessments, visits, sessions, participations) of
-- the years add up to `all`: where years are suppressed, further years (fewest factories first)
-- are suppressed until the suppressed years together cover at least k factories, or else `all`.
-- A training figure's contributors are factories, and each person (or session) whose factory is
-- not recorded counts on its own: a cell of a few people with no factory is no zero.
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

factories as (
    select * from {{ ref('dim_factory') }}
    where in_registry and not is_deleted
),

participations as (
    select * from {{ ref('fct_training_participation') }}
),

sessions as (
    select * from {{ ref('fct_training_session') }}
),

contributors as (
    select
        'factories_engaged' as measure,
        periods.period,
        factories.factory_id::text as factory_id
    from periods
    inner join factories
        on
            (periods.period_end is null or periods.period_end >= factories.enrolled_on)
            and (
                periods.period_start is null
                or factories.exited_on is null
                or periods.period_start <= factories.exited_on
            )
    union all
    select
        'assessments' as measure,
        periods.period,
        panel.factory_id::text as factory_id
    from periods
    inner join {{ ref('factory_cycle_panel') }} as panel
        on {{ falls_in_period('panel.start_date') }}
    union all
    select
        'advisory_visits' as measure,
        periods.period,
        visits.factory_id::text as factory_id
    from periods
    inner join {{ ref('fct_advisory_visit') }} as visits
        on {{ falls_in_period('visits.visit_date') }}
    union all
    -- a session's factories: its own (if any) and those of its participants
    select
        'training_sessions' as measure,
        periods.period,
        coalesce(
            participations.factory_id::text, sessions.factory_id::text,
            'person:' || participations.person_key, 'session:' || sessions.session_id::text
        ) as factory_id
    from periods
    inner join sessions
        on {{ falls_in_period('sessions.starts_on') }}
    left join participations
        on sessions.session_id = participations.session_id
    union all
    select
        'training_participations' as measure,
        periods.period,
        coalesce(participations.factory_id::text, 'person:' || participations.person_key) as factory_id
    from periods
    inner join participations
        on
            participations.attended
            and {{ falls_in_period('participations.starts_on') }}
),

measures as (
    select
        measure,
        measure in ('assessments', 'advisory_visits', 'training_sessions', 'training_participations')
            as is_additive
    from (
        values ('factories_engaged'), ('assessments'), ('advisory_visits'), ('training_sessions'),
        ('training_participations')
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
        bool_or(measure = 'factories_engaged' and suppression is not null) as engaged,
        bool_or(measure = 'assessments' and suppression is not null) as assessments,
        bool_or(measure = 'advisory_visits' and suppression is not null) as visits,
        bool_or(measure = 'training_sessions' and suppression is not null) as sessions,
        bool_or(measure = 'training_participations' and suppression is not null) as participations,
        string_agg(measure || ':' || suppression, ', ' order by measure) as reasons
    from decided
    group by period
)

select
    kpis.period,
    case when not suppressed.engaged then kpis.factories_engaged end as factories_engaged,
    case when not suppressed.assessments then kpis.assessments end as assessments,
    case when not suppressed.visits then kpis.advisory_visits end as advisory_visits,
    case when not suppressed.sessions then kpis.training_sessions end as training_sessions,
    case when not suppressed.participations then kpis.training_participants end as training_participants,
    case when not suppressed.participations then kpis.training_participations end as training_participations,
    case
        when not suppressed.participations then kpis.female_participant_share::double precision
    end as female_participant_share,
    suppressed.reasons is not null as is_suppressed,
    suppressed.reasons as suppressed_cells
from kpis
inner join suppressed on kpis.period = suppressed.period
