{#- An NCQ finding as a boolean: 1 non-compliant, 0 compliant, anything else (empty, n/a) null.
    XLSX exports may carry numbers as `1.0`, so a trailing zero fraction is accepted. -#}
{% macro binary_finding(expression) -%}
    case
        when trim({{ expression }}) ~ '^1(\.0+)?$' then true
        when trim({{ expression }}) ~ '^0(\.0+)?$' then false
    end
{%- endmacro %}
