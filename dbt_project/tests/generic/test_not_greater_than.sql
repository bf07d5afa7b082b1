{#- Fails on rows where the column exceeds another column of the same row (e.g. non-compliant
    factories never exceed assessed ones). -#}
{% test not_greater_than(model, column_name, other_column) %}
select {{ column_name }}, {{ other_column }}
from {{ model }}
where {{ column_name }} > {{ other_column }}
{% endtest %}
