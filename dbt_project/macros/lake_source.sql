{#-
    A lake table as a relation. On DuckDB the source is a read_parquet() over
    the lake's files, which fails when a table has no file yet (a fresh lake):
    then it reads as zero rows of the columns declared in _sources.yml.
    On Redshift the source is a Spectrum external table and is used as is.
-#}
{% macro lake_source(table_name) -%}
    {{ return(adapter.dispatch('lake_source', 'imagelake')(table_name)) }}
{%- endmacro %}

{% macro default__lake_source(table_name) -%}
    {{ source('lake', table_name) }}
{%- endmacro %}

{% macro duckdb__lake_source(table_name) -%}
    {%- set relation = source('lake', table_name) -%}
    {%- if not execute -%}
        {{ relation }}
    {%- else -%}
        {%- set node = graph.sources['source.imagelake.lake.' ~ table_name] -%}
        {%- set pattern = node.meta.lake_root ~ '/' ~ node.meta.lake_prefix ~ '/dt=*/*.parquet' -%}
        {%- set found = run_query("select count(*) from glob('" ~ pattern ~ "')").columns[0].values()[0] -%}
        {%- if found > 0 -%}
            {{ relation }}
        {%- else -%}
            (select
            {%- for column in node.columns.values() %}
                cast(null as {{ column.data_type }}) as {{ column.name }}{{ "," if not loop.last }}
            {%- endfor %}
            where false)
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
