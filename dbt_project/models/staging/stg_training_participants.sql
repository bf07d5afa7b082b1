-- One person in one session, latest version per participation; deletions flagged. Personal data
-- (full_name, cnic, phone) is not selected: it stops in raw. Old rows spell genders F / M.
--
-- Incremental by batch: a participation with a version in a batch newer than the newest batch
-- held here is recomputed from all its raw versions and replaces its row (delete + insert).
{{ config(
    materialized='incremental',
    unique_key='participant_id',
    incremental_strategy='delete+insert',
    on_schema_change='sync_all_columns',
    indexes=[
        {'columns': ['participant_id'], 'unique': True},
        {'columns': ['session_id']},
        {'columns': ['batch_id']},
    ],
) }}

with

latest as (
    select distinct on (participant_id) *
    from {{ source('raw', 'cm_training_participants') }}
    {% if is_incremental() %}
        where participant_id in (
            select new_rows.participant_id
            from {{ source('raw', 'cm_training_participants') }} as new_rows
            where new_rows._batch_id > (select coalesce(max(held.batch_id), 0) from {{ this }} as held)
        )
    {% endif %}
    order by participant_id asc, updated_at desc nulls last, _batch_id desc, _source_row desc
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
    deleted_at is not null as is_deleted,
    _batch_id as batch_id
from latest
