{#-
    SQL that differs between DuckDB (local) and Redshift (prod). Everything
    else in the models is plain SQL both engines share, or dbt's own
    cross-database macros (dbt.datediff, dbt.dateadd, ...).
-#}

{#- A continuous percentile (0 < fraction < 1) as an aggregate. Redshift takes the
    ordered-set form and requires every such aggregate of one query to order by
    the same expression: keep percentiles of different columns in separate CTEs. -#}
{% macro percentile(expression, fraction) -%}
    {{ return(adapter.dispatch('percentile', 'imagelake')(expression, fraction)) }}
{%- endmacro %}

{% macro default__percentile(expression, fraction) -%}
    percentile_cont({{ fraction }}) within group (order by {{ expression }})
{%- endmacro %}

{% macro duckdb__percentile(expression, fraction) -%}
    quantile_cont({{ expression }}, {{ fraction }})
{%- endmacro %}

{#- Seconds from one timestamp to a later one, with millisecond precision. -#}
{% macro seconds_between(start, finish) -%}
    ({{ dbt.datediff(start, finish, 'millisecond') }} / 1000.0)
{%- endmacro %}

{#- p50, p95 and max of a duration in seconds (millisecond precision), named <name>_p50_s,
    <name>_p95_s, <name>_max_s. -#}
{% macro duration_percentiles(column, name) -%}
    cast({{ percentile(column, 0.5) }} as decimal(18, 3)) as {{ name }}_p50_s,
    cast({{ percentile(column, 0.95) }} as decimal(18, 3)) as {{ name }}_p95_s,
    cast(max({{ column }}) as decimal(18, 3)) as {{ name }}_max_s
{%- endmacro %}
