{{ config(
    schema='intermediate',
    alias='research_programme_kpi_cells',
    contract={'enforced': false},
    persist_docs={'relation': false, 'columns': false},
    grants={},
    post_hook="{{ research_register('programme_kpis') }}",
) }}

-- The cells of research.programme_kpis (measure × period) and their suppression, decided by
-- research_period_suppression (docs/ACCESS.md). Each figure is a cell built from the factories behind
-- it (engaged; assessed; visited; whose people or sessions were trained in the period). A training
-- figure's contributors are factories, and each person (or session) whose factory is not recorded
-- counts on its own: a cell of a few people with no factory is no zero. Lives in `intermediate`
-- (researchers cannot read it): it holds each cell's population hash for the suppression register.
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

decided as (
    {{ research_period_suppression('programme_kpis', 'contributors', 'measures', 'periods') }}
)

select * from decided
