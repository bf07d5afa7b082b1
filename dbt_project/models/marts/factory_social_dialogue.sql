-- One row per registry factory (not deleted, not obsolete) × calendar year in which it was
-- engaged: from its enrolment year to the run's year (dbt var `as_of`, default current_date), or to
-- its exit year if it exited. All PICC meetings held in the year count. A quarter asks for a
-- meeting only if the factory was engaged for the whole of it (enrolled on or before its first
-- day, not exited before its last); has_regular_picc is false when no quarter of the year asks.
{%- set as_of = var('as_of', none) %}

with

factories as (
    select
        factory_id,
        enrolled_on,
        exited_on,
        female_worker_share
    from {{ ref('dim_factory') }}
    where
        in_registry
        and not is_deleted
        and not is_obsolete
        and enrolled_on is not null
),

factory_years as (
    select
        factories.factory_id,
        factories.enrolled_on,
        factories.exited_on,
        factories.female_worker_share,
        year_number as year
    from factories
    cross join lateral generate_series(
        extract(year from factories.enrolled_on)::int,
        least(
            extract(year from {% if as_of %}'{{ as_of }}'::date{% else %}current_date{% endif %})::int,
            coalesce(extract(year from factories.exited_on)::int, 9999)
        )
    ) as year_number
),

meetings as (
    select * from {{ ref('fct_picc_meeting') }}
),

quarters as (
    select
        factory_years.factory_id,
        factory_years.year,
        quarter_starts.quarter_start,
        (quarter_starts.quarter_start + interval '3 months' - interval '1 day')::date as quarter_end,
        (
            factory_years.enrolled_on <= quarter_starts.quarter_start
            and (
                factory_years.exited_on is null
                or factory_years.exited_on
                >= (quarter_starts.quarter_start + interval '3 months' - interval '1 day')::date
            )
        ) as engaged_whole_quarter
    from factory_years
    cross join lateral (
        select make_date(factory_years.year, month_number, 1) as quarter_start
        from unnest(array[1, 4, 7, 10]) as month_number
    ) as quarter_starts
),

quarter_meetings as (
    select
        quarters.factory_id,
        quarters.year,
        quarters.quarter_start,
        quarters.engaged_whole_quarter,
        count(meetings.meeting_id) > 0 as has_meeting
    from quarters
    left join meetings
        on
            quarters.factory_id = meetings.factory_id
            and meetings.held_on between quarters.quarter_start and quarters.quarter_end
    group by quarters.factory_id, quarters.year, quarters.quarter_start, quarters.engaged_whole_quarter
),

quarter_summary as (
    select
        factory_id,
        year,
        count(*) filter (where has_meeting) as quarters_with_meeting,
        coalesce(
            bool_and(has_meeting) filter (where engaged_whole_quarter),
            false
        ) as has_regular_picc
    from quarter_meetings
    group by factory_id, year
),

year_meetings as (
    select
        factory_years.factory_id,
        factory_years.year,
        count(meetings.meeting_id) as picc_meetings,
        sum(meetings.women_present) as women_present,
        sum(meetings.attendees) as attendees
    from factory_years
    left join meetings
        on
            factory_years.factory_id = meetings.factory_id
            and extract(year from meetings.held_on)::int = factory_years.year
    group by factory_years.factory_id, factory_years.year
),

shares as (
    select
        factory_years.factory_id,
        factory_years.year,
        year_meetings.picc_meetings,
        quarter_summary.quarters_with_meeting,
        quarter_summary.has_regular_picc,
        year_meetings.women_present::double precision
        / nullif(year_meetings.attendees, 0) as women_share_of_attendees,
        factory_years.female_worker_share
    from factory_years
    inner join year_meetings
        on factory_years.factory_id = year_meetings.factory_id and factory_years.year = year_meetings.year
    inner join quarter_summary
        on factory_years.factory_id = quarter_summary.factory_id and factory_years.year = quarter_summary.year
)

select
    factory_id,
    year,
    picc_meetings::int as picc_meetings,
    quarters_with_meeting::int as quarters_with_meeting,
    has_regular_picc,
    women_share_of_attendees,
    female_worker_share::double precision as female_worker_share,
    women_share_of_attendees - female_worker_share as women_representation_gap
from shares
