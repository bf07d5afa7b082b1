-- One row per advisory visit that is not deleted.
select
    visit_id,
    factory_id,
    visit_date,
    phase,
    mode,
    advisor_code,
    topics
from {{ ref('stg_advisory_visits') }}
where not is_deleted
