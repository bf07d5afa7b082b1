-- Training sessions, latest version per session; deletions flagged.
{{ config(indexes=[{'columns': ['session_id'], 'unique': True}, {'columns': ['batch_id']}]) }}

with

latest as (
    {{ latest_version(
        source('raw', 'cm_training_sessions'),
        'session_id',
        'updated_at desc nulls last, _batch_id desc, _source_row desc'
    ) }}
)

select
    session_id,
    upper(trim(course_code)) as course_code,
    factory_id,
    trim(city) as city,
    starts_on,
    ends_on,
    trainer_code,
    updated_at,
    deleted_at,
    deleted_at is not null as is_deleted,
    _batch_id as batch_id
from latest
