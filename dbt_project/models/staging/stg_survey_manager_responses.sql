-- Manager survey submissions, one row per `_uuid` (the latest file's version, stg_survey_answers),
-- answers under their canonical names and typed; consent kept as a flag (downstream leaves a
-- non-consenting submission out). An answer outside its scale reads as not answered (null).
with

{{ survey_pivot('manager', [
    'workers_total', 'workers_female', 'monthly_turnover_pct', 'absenteeism_pct',
    'line_efficiency_pct', 'orders_lost_last_year'
]) }}

select
    {{ survey_submission_columns() }},
    {{ survey_number('workers_total', 0, 100000) }} as workers_total,
    {{ survey_number('workers_female', 0, 100000) }} as workers_female,
    {{ survey_number('monthly_turnover_pct', 0, 100, 'numeric') }} as monthly_turnover_pct,
    {{ survey_number('absenteeism_pct', 0, 100, 'numeric') }} as absenteeism_pct,
    {{ survey_number('line_efficiency_pct', 0, 100, 'numeric') }} as line_efficiency_pct,
    {{ survey_yes_no('orders_lost_last_year') }} as orders_lost_last_year
from pivoted
