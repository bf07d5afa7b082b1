-- Every answer of every survey submission under its canonical question, for both instruments:
-- the latest file wins per submission (`_uuid`): the latest export date of its batch (undated
-- last), then the latest loaded batch, then the last row of the file. Each question's source
-- name is mapped through the seed survey_question_crosswalk for the submission's form version
-- (2024.1 spelled some questions differently). Personal columns (respondent/name,
-- respondent/phone) are removed before the unpivot and are not in the crosswalk: they never
-- leave raw. Empty answers (refused) are null.
with

batches as (
    select
        batch_id,
        exported_on
    from {{ source('audit', 'load_batches') }}
),

submissions as (
    select
        'worker' as instrument,
        to_jsonb(worker_rows) - 'respondent/name' - 'respondent/phone' as answers,
        btrim(worker_rows._uuid) as response_id,
        worker_rows._batch_id as batch_id,
        worker_rows._source_row as source_row,
        batches.exported_on
    from {{ source('raw', 'survey_worker_rows') }} as worker_rows
    left join batches
        on worker_rows._batch_id = batches.batch_id
    where nullif(btrim(worker_rows._uuid), '') is not null

    union all

    select
        'manager' as instrument,
        to_jsonb(manager_rows) as answers,
        btrim(manager_rows._uuid) as response_id,
        manager_rows._batch_id as batch_id,
        manager_rows._source_row as source_row,
        batches.exported_on
    from {{ source('raw', 'survey_manager_rows') }} as manager_rows
    left join batches
        on manager_rows._batch_id = batches.batch_id
    where nullif(btrim(manager_rows._uuid), '') is not null
),

latest as (
    {{ latest_version(
        'submissions',
        'instrument, response_id',
        'exported_on desc nulls last, batch_id desc, source_row desc'
    ) }}
),

crosswalk as (
    select * from {{ ref('survey_question_crosswalk') }}
)

select
    latest.instrument,
    latest.response_id,
    latest.batch_id,
    latest.exported_on,
    nullif(btrim(latest.answers ->> '_submission_time'), '') as submission_time,
    nullif(btrim(latest.answers ->> '_form_version'), '') as form_version,
    nullif(btrim(latest.answers ->> 'wave'), '') as wave,
    nullif(btrim(latest.answers ->> 'factory_id'), '') as factory_id,
    lower(nullif(btrim(latest.answers ->> 'consent'), '')) as consent,
    crosswalk.question,
    nullif(btrim(latest.answers ->> crosswalk.source_name), '') as answer
from latest
left join crosswalk
    on
        latest.instrument = crosswalk.instrument
        and btrim(latest.answers ->> '_form_version') = crosswalk.form_version
