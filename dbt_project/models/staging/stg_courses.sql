-- Course catalogue: no updated_at in the source, so the latest loaded batch wins.
{{ config(indexes=[{'columns': ['course_code']}]) }}

with

latest as (
    {{ latest_version(
        source('raw', 'cm_courses'),
        'course_code',
        '_batch_id desc, _source_row desc'
    ) }}
)

select
    upper(trim(course_code)) as course_code,
    title,
    days
from latest
