-- Worker survey submissions, one row per `_uuid` (the latest file's version, stg_survey_answers),
-- answers under their canonical names and typed. Consent is kept as a flag: a submission without
-- consent is here (as in raw) but every model downstream leaves it out. An answer outside its
-- scale reads as not answered (null).
with

answers as (
    select * from {{ ref('stg_survey_answers') }}
    where instrument = 'worker'
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
        max(answer) filter (where question = 'gender') as gender,
        max(answer) filter (where question = 'age') as age,
        max(answer) filter (where question = 'tenure_months') as tenure_months,
        max(answer) filter (where question = 'role') as role,
        max(answer) filter (where question = 'pay_last_month_pkr') as pay_last_month_pkr,
        max(answer) filter (where question = 'payslip') as payslip,
        max(answer) filter (where question = 'hours_last_week') as hours_last_week,
        max(answer) filter (where question = 'concern_verbal_abuse') as concern_verbal_abuse,
        max(answer) filter (where question = 'concern_sexual_harassment') as concern_sexual_harassment,
        max(answer) filter (where question = 'concern_physical_abuse') as concern_physical_abuse,
        max(answer) filter (where question = 'concern_low_wages') as concern_low_wages,
        max(answer) filter (where question = 'concern_late_payment') as concern_late_payment,
        max(answer) filter (where question = 'concern_excessive_overtime') as concern_excessive_overtime,
        max(answer) filter (where question = 'knows_picc') as knows_picc,
        max(answer) filter (where question = 'life_satisfaction') as life_satisfaction,
        max(answer) filter (where question = 'training_attended') as training_attended
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
