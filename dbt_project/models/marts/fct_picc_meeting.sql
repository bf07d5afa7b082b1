-- One row per PICC (performance improvement consultative committee) meeting, latest version.
-- Meetings of deleted or obsolete factories are kept: dim_factory flags those factories.
select
    meeting_id,
    factory_id,
    held_on,
    workers_present,
    managers_present,
    women_present,
    (coalesce(workers_present, 0) + coalesce(managers_present, 0))::int as attendees,
    women_present::double precision
    / nullif(coalesce(workers_present, 0) + coalesce(managers_present, 0), 0) as women_share_of_attendees
from {{ ref('stg_picc_meetings') }}
