{#-
    Data tests check what a build wrote. A test whose `where` config says
    `__window__` is limited, on a build with an explicit window (every Dagster
    run), to the days of that window, by the column the tested model names in
    `meta.window_column`; otherwise it checks every row. This is dbt's own
    get_where_subquery with that one placeholder added.
-#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where') -%}
    {%- if where -%}
        {%- set where = where | replace('__window__', tested_window()) -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}

{% macro tested_window() -%}
    {%- set tested = graph.nodes.get(model.attached_node) if model.attached_node else none -%}
    {%- set column = tested.config.meta.get('window_column') if tested else none -%}
    {%- if column and window_bound('min_date') -%}
        {{ return(column ~ ' between ' ~ window_start() ~ ' and ' ~ window_end()) }}
    {%- endif -%}
    {{ return('1 = 1') }}
{%- endmacro %}
