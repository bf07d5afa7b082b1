-- The social dialogue, remediation and gender columns of programme_kpis, with the disclosure control
-- of research.programme_kpis (docs/ACCESS.md); the decisions are made per cell in
-- research_programme_dialogue_kpi_cells.
with

kpis as (
    select * from {{ ref('programme_kpis') }}
),

decided as (
    select * from {{ ref('research_programme_dialogue_kpi_cells') }}
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
