-- factory_social_dialogue of the marts under pseudonymous factory keys (docs/ACCESS.md). The exact
-- female worker share is left out (with the size band it could single a factory out; research
-- dim_factory has its band); the gap is published only as its sign. A factory's first row would give
-- its enrolment year back, so rows are published only where research.dim_factory publishes the
-- factory's enrolment year, and only for years with at least k such factories.
with

dialogue as (
    select
        marts_dialogue.*,
        private.pseudonym('factory', marts_dialogue.factory_id::text) as factory_key
    from {{ ref('factory_social_dialogue') }} as marts_dialogue
),

factories as (
    select * from {{ ref('research_dim_factory') }}
    where enrolment_year is not null
),

publishable as (
    select dialogue.*
    from dialogue
    inner join factories
        on dialogue.factory_key = factories.factory_key
),

published_years as (
    select year
    from publishable
    group by year
    having count(distinct factory_key) >= {{ research_k() }}
)

select
    publishable.factory_key,
    publishable.year,
    publishable.picc_meetings,
    publishable.quarters_with_meeting,
    publishable.has_regular_picc,
    publishable.women_share_of_attendees,
    publishable.women_representation_gap < 0 as women_under_represented
from publishable
inner join published_years
    on publishable.year = published_years.year
