{#- Rows of `relation` that are the latest version of their key: raw tables are append-only, one
    row per extracted version, so staging keeps the first row per `partition_by` in `order_by`.
    `distinct on` rather than a row_number() filter: the planner then estimates the result from
    the key's distinct count, so joins of staging views get hash joins, not nested loops. -#}
{% macro latest_version(relation, partition_by, order_by) -%}
    select distinct on ({{ partition_by }}) *
    from {{ relation }}
    order by {{ partition_by }}, {{ order_by }}
{%- endmacro %}
