{#-
    A lake table as a relation. On DuckDB the source is a read_parquet() over
    the lake's files, which fails when a table has no file yet (a fresh lake):
    then it reads as zero rows of the columns declared in _sources.yml, and a
    declared column no file has yet (older files, a column added since) reads
    as null.
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
    {%- if not execute or 'sources' not in graph -%}
        {#- parsing, or a unit test (its given rows stand in for the source) -#}
        {{ relation }}
    {%- else -%}
        {%- set node = graph.sources['source.imagelake.lake.' ~ table_name] -%}
        {%- if imagelake.lake_files_found(node) -%}
            {#- every declared column, null where no file has it yet (files written before it was added) -#}
            (select * from {{ relation }}
            union all by name
            select
            {%- for column in node.columns.values() %}
                cast(null as {{ column.data_type }}) as {{ column.name }},
            {%- endfor %}
                cast(null as date) as dt
            where false)
        {%- else -%}
            (select
            {%- for column in node.columns.values() %}
                cast(null as {{ column.data_type }}) as {{ column.name }},
            {%- endfor %}
                cast(null as date) as dt
            where false)
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{#- Whether a lake table (its source node) has any file yet. -#}
{% macro lake_files_found(node) -%}
    {%- set pattern = node.meta.lake_root ~ '/' ~ node.meta.lake_prefix ~ '/dt=*/*.parquet' -%}
    {{ return(run_query("select count(*) from glob('" ~ pattern ~ "')").columns[0].values()[0] > 0) }}
{%- endmacro %}

{#-
    `dbt source freshness` on DuckDB: a lake table with no file yet fails with
    what to do, not DuckDB's "No files found that match the pattern".
-#}
{% macro duckdb__collect_freshness(source, loaded_at_field, filter) -%}
    {%- set node = graph.sources.get('source.imagelake.lake.' ~ source.identifier) -%}
    {%- if node is not none and not imagelake.lake_files_found(node) -%}
        {{ exceptions.raise_compiler_error(
            "lake table " ~ source.identifier ~ " has no data yet: nothing under "
            ~ node.meta.lake_root ~ "/" ~ node.meta.lake_prefix ~ "/. It fills once the job that writes it has run"
            ~ " (upload_events, image_metadata: a processed upload; derivatives: derivatives_job;"
            ~ " storage_inventory: warehouse_job or garbage_collection_job; dead_letters: a message that was not a valid event)."
        ) }}
    {%- endif -%}
    {{ return(dbt.default__collect_freshness(source, loaded_at_field, filter)) }}
{%- endmacro %}

{#-
    The day a lake row belongs to. Every table file lives under dt=YYYY-MM-DD
    (imagelake/lake/layout.py): the upload date for upload events, metadata and
    derivatives, the receiving date for dead letters, the listing date for the
    storage inventory. On DuckDB that folder name is the `dt` column
    (hive partitioning), so a filter on the day skips other days' files
    unopened; Spectrum's tables are not partitioned, so Redshift derives the
    same day from the row's own timestamp.
-#}
{% macro lake_day(timestamp_column) -%}
    {{ return(adapter.dispatch('lake_day', 'imagelake')(timestamp_column)) }}
{%- endmacro %}

{% macro default__lake_day(timestamp_column) -%}
    cast({{ timestamp_column }} as date)
{%- endmacro %}

{% macro duckdb__lake_day(timestamp_column) -%}
    cast(dt as date)
{%- endmacro %}
