-- PICC meetings, latest version per meeting.
{{ config(indexes=[{'columns': ['meeting_id'], 'unique': True}, {'columns': ['factory_id']}]) }}

with

latest as (
    {{ latest_version(
        source('raw', 'cm_picc_meetings'),
        'meeting_id',
        'updated_at desc nulls last, _batch_id desc, _source_row desc'
    ) }}
)

select
    meeting_id,
    factory_id,
    held_on,
    workers_present,
    managers_present,
    women_present,
    updated_at
from latest
