-- Worker survey submissions, one row per `_uuid` (the latest file's version, stg_survey_answers),
-- answers under their canonical names and typed. Consent is kept as a flag: a submission without
-- consent is here (as in raw) but every model downstream leaves it out. An answer outside its
-- scale reads as not answered (null).
with

{{ survey_pivot('worker', [
    'gender', 'age', 'tenure_months', 'role', 'pay_last_month_pkr', 'payslip',
    'hours_last_week', 'concern_verbal_abuse', 'concern_sexual_harassment',
    'concern_physical_abuse', 'concern_low_wages', 'concern_late_payment',
    'concern_excessive_overtime', 'knows_picc', 'life_satisfaction', 'training_attended'
]) }}

select
    {{ survey_submission_columns() }},
    case when lower(gender) in ('female', 'male', 'other') then lower(gender) end as gender,
    {{ survey_number('age', 0, 99) }} as age,
    {{ survey_number('tenure_months', 0, 600) }} as tenure_months,
    case
        when lower(role) in ('operator', 'helper', 'checker', 'line_supervisor') then lower(role)
    end as role,
    {{ survey_number('pay_last_month_pkr', 0, 10000000, 'numeric') }} as pay_last_month_pkr,
    {{ survey_yes_no('payslip') }} as has_payslip,
    {{ survey_number('hours_last_week', 0, 112, 'numeric') }} as hours_last_week,
    {{ survey_number('concern_verbal_abuse', 0, 3) }} as concern_verbal_abuse,
    {{ survey_number('concern_sexual_harassment', 0, 3) }} as concern_sexual_harassment,
    {{ survey_number('concern_physical_abuse', 0, 3) }} as concern_physical_abuse,
    {{ survey_number('concern_low_wages', 0, 3) }} as concern_low_wages,
    {{ survey_number('concern_late_payment', 0, 3) }} as concern_late_payment,
    {{ survey_number('concern_excessive_overtime', 0, 3) }} as concern_excessive_overtime,
    case when lower(knows_picc) in ('yes', 'no', 'dont_know') then lower(knows_picc) end as knows_picc,
    {{ survey_number('life_satisfaction', 0, 10) }} as life_satisfaction,
    nullif(regexp_replace(btrim(training_attended), '\s+', ' ', 'g'), '') as training_attended
from pivoted
