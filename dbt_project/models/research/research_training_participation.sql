-- One row per participation (a person in a session; not deleted, attended or not) with keyed
-- pseudonyms for the person, the session and the factory, and no name, CNIC, phone or programme id.
-- Sessions are dated by year only.
with

participations as (
    select * from {{ ref('fct_training_participation') }}
)

select
    private.pseudonym('participation', participant_id::text) as participation_key,
    person_key,
    private.pseudonym('session', session_id::text) as session_key,
    private.pseudonym('factory', factory_id::text) as factory_key,
    course_code,
    extract(year from starts_on)::int as session_year,
    gender,
    role,
    attended,
    pre_score::double precision as pre_score,
    post_score::double precision as post_score
from participations
