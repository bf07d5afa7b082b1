{{ config(
    schema='intermediate',
    alias='research_programme_dialogue_kpi_cells',
    contract={'enforced': false},
    persist_docs={'relation': false, 'columns': false},
    grants={},
    post_hook="{{ research_register('programme_dialogue_kpis') }}",
) }}

-- The cells of research.programme_dialogue_kpis (measure × period) and their suppression, decided
-- by research_period_suppression as for research.programme_kpis (docs/ACCESS.md). Each figure is a
-- cell built from the factories behind it (whose PICC met; whose items were raised or completed;
-- whose women supervisors were trained) in the period. Lives in `intermediate` (researchers cannot
-- read it): it holds each cell's population hash for the suppression register.
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

decided as (
    {{ research_period_suppression('programme_dialogue_kpis', 'contributors', 'measures', 'periods') }}
)

select * from decided
