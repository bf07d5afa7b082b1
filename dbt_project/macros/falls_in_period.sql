{#- The reporting-period rule of programme_kpis (docs/MARTS.md): a `periods` row with a null start is
    period 'all' and takes every date; a year row takes the dates between its start and end. -#}
{% macro falls_in_period(date_expr, periods='periods') -%}
    ({{ periods }}.period_start is null or {{ date_expr }} between {{ periods }}.period_start and {{ periods }}.period_end)
{%- endmacro %}
