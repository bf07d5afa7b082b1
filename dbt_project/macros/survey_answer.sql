{#- Survey answers arrive as text (raw keeps what the tablet sent). A numeric answer is read only
    when it is a number inside its scale; anything else (empty = refused, out of range, not a number:
    GX warned about it at load) is null, i.e. not answered. Nested CASE: the cast runs only on a
    value that looks like a number. -#}
{% macro survey_number(expression, low, high, type='int') -%}
    case
        when {{ expression }} ~ '^[0-9]{1,9}([.][0-9]+)?$'
            then case
                when {{ expression }}::numeric between {{ low }} and {{ high }}
                    then {{ expression }}::numeric::{{ type }}
            end
    end
{%- endmacro %}

{#- A yes/no answer as a boolean (anything else null). -#}
{% macro survey_yes_no(expression) -%}
    case lower({{ expression }}) when 'yes' then true when 'no' then false end
{%- endmacro %}

{#- The CTEs `answers` and `pivoted` of an instrument's staging model: its answers from
    stg_survey_answers, one row per submission (`response_id`) with the submission's own fields and
    one text column per question (the canonical names of survey_question_crosswalk). -#}
{% macro survey_pivot(instrument, questions) -%}
answers as (
    select * from {{ ref('stg_survey_answers') }}
    where instrument = '{{ instrument }}'
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
        {%- for question in questions %}
        max(answer) filter (where question = '{{ question }}') as {{ question }}{{ "," if not loop.last }}
        {%- endfor %}
    from answers
    group by response_id
)
{%- endmacro %}

{#- The columns every submission has, typed (from survey_pivot's `pivoted`). -#}
{% macro survey_submission_columns() -%}
    response_id,
    batch_id,
    form_version,
    {{ survey_number('wave', 1, 1000) }} as wave,
    {{ survey_number('factory_id', 0, 2000000000) }} as factory_id,
    submission_time::timestamptz as submitted_at,
    (submission_time::timestamptz at time zone 'UTC')::date as submitted_on,
    consent = 'yes' as is_consenting
{%- endmacro %}
