-- One person in one session, latest version per participation; deletions flagged. Personal data
-- (full_name, cnic, phone) is not selected: it stops in raw. Old rows spell genders F / M.
with

latest as (
    {{ latest_version(
        source('raw', 'cm_training_participants'),
        'participant_id',
        'updated_at desc nulls last, _batch_id desc, _source_row desc'
    ) }}
)

select
    participant_id,
    session_id,
    trim(person_ref) as person_ref,
    case lower(trim(gender))
        when 'f' then 'female'
        when 'female' then 'female'
        when 'm' then 'male'
        when 'male' then 'male'
        when 'other' then 'other'
    end as gender,
    lower(trim(role)) as role,
    factory_id,
    coalesce(attended, false) as attended,
    pre_score,
    post_score,
    updated_at,
    deleted_at,
    deleted_at is not null as is_deleted
from latest
