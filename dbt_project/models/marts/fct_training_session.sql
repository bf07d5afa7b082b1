-- One row per training session that is not deleted, with its course and attendance.
with

sessions as (
    select * from {{ ref('stg_training_sessions') }}
    where not is_deleted
),

courses as (
    select * from {{ ref('stg_courses') }}
),

attendance as (
    select
        session_id,
        count(*) as participations_attended,
        count(distinct person_ref) as participants_attended
    from {{ ref('int_counted_participations') }}
    group by session_id
)

select
    sessions.session_id,
    sessions.course_code,
    courses.title as course_title,
    sessions.factory_id,
    sessions.city,
    sessions.starts_on,
    sessions.ends_on,
    sessions.trainer_code,
    coalesce(attendance.participations_attended, 0)::int as participations_attended,
    coalesce(attendance.participants_attended, 0)::int as participants_attended
from sessions
left join courses
    on sessions.course_code = courses.course_code
left join attendance
    on sessions.session_id = attendance.session_id
