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
