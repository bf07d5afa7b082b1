-- One row per participation (a person in a session) that is not deleted, in a session that is
-- not deleted; attended or not. The person is a keyed pseudonym (HMAC in the warehouse).
--
-- Incremental: participations whose latest version, or whose session's, came in a batch newer
-- than the newest held here are rebuilt (delete + insert on participant_id); the post-hook then
-- removes rows that are no longer facts (participation or session deleted, session gone). A new
-- pseudonym key needs `dbt build --full-refresh`.
{{ config(
    materialized='incremental',
    unique_key='participant_id',
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    indexes=[{'columns': ['session_id']}, {'columns': ['batch_id']}],
    post_hook=[
        "delete from {{ this }} as held where not exists (
            select 1
            from {{ ref('stg_training_participants') }} as participants
            inner join {{ ref('stg_training_sessions') }} as sessions
                on participants.session_id = sessions.session_id
            where
                participants.participant_id = held.participant_id
                and not participants.is_deleted
                and not sessions.is_deleted
        )",
    ],
) }}

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
    participants.post_score,
    greatest(participants.batch_id, sessions.batch_id) as batch_id
from participants
inner join sessions
    on participants.session_id = sessions.session_id
{% if is_incremental() %}
    where greatest(participants.batch_id, sessions.batch_id) > (
        select coalesce(max(held.batch_id), 0) from {{ this }} as held
    )
{% endif %}
