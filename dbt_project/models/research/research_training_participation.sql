-- Training participation as suppressed aggregates, not person rows (docs/ACCESS.md): one cell per
-- session year × course × gender × role, decided in research_training_cells (not readable by
-- researchers: it holds each cell's population hash for the suppression register).
select
    session_year,
    course_code,
    gender,
    role,
    case when suppression is null then participants::int end as participants,
    case when suppression is null then participations::int end as participations,
    case when suppression is null then attended_participations::int end as attended_participations,
    case when suppression is null then mean_pre_score end as mean_pre_score,
    case when suppression is null then mean_post_score end as mean_post_score,
    suppression is not null as is_suppressed,
    suppression as suppression_reason
from {{ ref('research_training_cells') }}
