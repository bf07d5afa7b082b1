-- Participations that count (docs/MARTS.md): not deleted, attended, in a session that exists and
-- is not deleted. Dated by the session's start.
with

participants as (
    select * from {{ ref('stg_training_participants') }}
),

sessions as (
    select * from {{ ref('stg_training_sessions') }}
)

select
    participants.participant_id,
    participants.session_id,
    participants.person_ref,
    participants.gender,
    participants.factory_id,
    sessions.starts_on
from participants
inner join sessions
    on participants.session_id = sessions.session_id
where
    participants.attended
    and not participants.is_deleted
    and not sessions.is_deleted
