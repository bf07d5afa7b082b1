-- One row per participation (a person in a session) that is not deleted, in a session that is
-- not deleted; attended or not. The person is a keyed pseudonym (HMAC in the warehouse).
with

participants as (
    select * from {{ ref('stg_training_participants') }}
    where not is_deleted
),

sessions as (
    select * from {{ ref('stg_training_sessions') }}
    where not is_deleted
)

select
    participants.participant_id,
    participants.session_id,
    private.pseudonym('person', participants.person_ref) as person_key,
    participants.factory_id,
    sessions.course_code,
    sessions.starts_on,
    participants.gender,
    participants.role,
    participants.attended,
    participants.pre_score,
    participants.post_score
from participants
inner join sessions
    on participants.session_id = sessions.session_id
