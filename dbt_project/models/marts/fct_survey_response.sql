-- One row per consenting worker survey submission (the latest file's version of each `_uuid`).
-- A submission without consent is left out (it stays in raw only). No name, phone or exact age:
-- the respondent is a keyed pseudonym of the submission id (as person_key is of person_ref), and
-- age is a band.
with

responses as (
    select * from {{ ref('stg_survey_worker_responses') }}
    where is_consenting
)

select
    private.pseudonym('survey_response', response_id) as response_key,
    wave,
    factory_id,
    submitted_on,
    form_version,
    gender,
    case
        when age < 20 then '<20'
        when age < 30 then '20-29'
        when age < 40 then '30-39'
        when age >= 40 then '40+'
    end as age_band,
    age < 14 as is_under_14,
    role,
    tenure_months,
    pay_last_month_pkr,
    has_payslip,
    hours_last_week,
    concern_verbal_abuse,
    concern_sexual_harassment,
    concern_physical_abuse,
    concern_low_wages,
    concern_late_payment,
    concern_excessive_overtime,
    knows_picc,
    life_satisfaction,
    training_attended,
    batch_id
from responses
