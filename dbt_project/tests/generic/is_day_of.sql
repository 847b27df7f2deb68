{#- Fails with every row whose day (`column_name`) is not the UTC date of `timestamp_column`:
    a job that wrote a row into the wrong dt= folder of the lake. -#}
{% test is_day_of(model, column_name, timestamp_column) %}

select {{ column_name }}, {{ timestamp_column }}
from {{ model }}
where {{ column_name }} <> cast({{ timestamp_column }} as date)

{% endtest %}
