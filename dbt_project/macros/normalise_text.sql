{#- Lower-case, trim and collapse internal whitespace: how compliance point names are compared
    (exports differ in case and spacing between tool versions). -#}
{% macro normalise_text(expression) -%}
    lower(regexp_replace(trim({{ expression }}), '\s+', ' ', 'g'))
{%- endmacro %}
