-- programme_kpis of the marts with disclosure control (docs/ACCESS.md): a figure built from
-- 1 … k-1 factories is suppressed (null); a zero describes nobody and stays; additive figures of
-- the years add up to `all`, so further years (or `all`) are suppressed until the suppressed years
-- cover at least k factories; a cell suppressed in an earlier build stays so while its population is
-- the same. The decisions are made per cell in research_programme_kpi_cells.
with

kpis as (
    select * from {{ ref('programme_kpis') }}
),

decided as (
    select * from {{ ref('research_programme_kpi_cells') }}
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
