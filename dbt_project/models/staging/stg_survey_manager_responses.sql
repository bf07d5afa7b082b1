-- Manager survey submissions, one row per `_uuid` (the latest file's version, stg_survey_answers),
-- answers under their canonical names and typed; consent kept as a flag (downstream leaves a
-- non-consenting submission out). An answer outside its scale reads as not answered (null).
with

answers as (
    select * from {{ ref('stg_survey_answers') }}
    where instrument = 'manager'
),

pivoted as (
    select
        response_id,
        max(batch_id) as batch_id,
        max(submission_time) as submission_time,
        max(form_version) as form_version,
        max(wave) as wave,
        max(factory_id) as factory_id,
        max(consent) as consent,
        max(answer) filter (where question = 'workers_total') as workers_total,
        max(answer) filter (where question = 'workers_female') as workers_female,
        max(answer) filter (where question = 'monthly_turnover_pct') as monthly_turnover_pct,
        max(answer) filter (where question = 'absenteeism_pct') as absenteeism_pct,
        max(answer) filter (where question = 'line_efficiency_pct') as line_efficiency_pct,
        max(answer) filter (where question = 'orders_lost_last_year') as orders_lost_last_year
    from answers
    group by response_id
)

select
    response_id,
    batch_id,
    form_version,
    {{ survey_number('wave', 1, 1000) }} as wave,
    {{ survey_number('factory_id', 0, 2000000000) }} as factory_id,
    submission_time::timestamptz as submitted_at,
    (submission_time::timestamptz at time zone 'UTC')::date as submitted_on,
    consent = 'yes' as is_consenting,
    {{ survey_number('workers_total', 0, 100000) }} as workers_total,
    {{ survey_number('workers_female', 0, 100000) }} as workers_female,
    {{ survey_number('monthly_turnover_pct', 0, 100, 'numeric') }} as monthly_turnover_pct,
    {{ survey_number('absenteeism_pct', 0, 100, 'numeric') }} as absenteeism_pct,
    {{ survey_number('line_efficiency_pct', 0, 100, 'numeric') }} as line_efficiency_pct,
    {{ survey_yes_no('orders_lost_last_year') }} as orders_lost_last_year
from pivoted
