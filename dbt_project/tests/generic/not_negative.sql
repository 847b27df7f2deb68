{#- Fails with every row whose `column_name` is below zero (counts, bytes, durations). -#}
{% test not_negative(model, column_name) %}

select {{ column_name }}
from {{ model }}
where {{ column_name }} < 0

{% endtest %}
