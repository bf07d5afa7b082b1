{#- Rows of `relation` that are the latest version of their key: raw tables are append-only, one
    row per extracted version, so staging keeps the first row per `partition_by` in `order_by`. -#}
{% macro latest_version(relation, partition_by, order_by) -%}
    select *
    from (
        select
            versions.*,
            row_number() over (partition by {{ partition_by }} order by {{ order_by }}) as version_rank
        from {{ relation }} as versions
    ) as ranked
    where version_rank = 1
{%- endmacro %}
