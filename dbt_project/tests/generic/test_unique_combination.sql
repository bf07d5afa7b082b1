{#- The combination of columns is unique (the project's own version of dbt_utils'
    unique_combination_of_columns: hub packages are unreachable here). -#}
{% test unique_combination(model, combination) %}
select {{ combination | join(', ') }}, count(*) as n
from {{ model }}
group by {{ combination | join(', ') }}
having count(*) > 1
{% endtest %}
