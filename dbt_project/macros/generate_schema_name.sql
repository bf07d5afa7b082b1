{#- Schemas are exactly the configured names (staging, intermediate, marts, snapshots, research),
    not dbt's default `<target schema>_<custom>`: roles.sql pre-creates them and grants on them. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
