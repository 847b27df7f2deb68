{#-
    Views on DuckDB (the local warehouse) are created again only when their SQL
    changed. A view's SQL is all there is to it, and the refresh every half
    minute would otherwise re-create every staging view, a catalog write and a
    re-bind of every lake file each, work that buys nothing when the SQL is the
    same (measured in docs/benchmarks.md, section "bench-marts"). The md5 of
    the compiled SQL is kept as the view's comment, and a view whose comment
    matches is left alone. A full refresh, a hook, new SQL (the lake's first
    files replacing the empty stand-in of macros/lake_source.sql, another lake
    root) or a comment set by anything else means the view is created again.
    So dbt's descriptions are not persisted to DuckDB views, and DuckDB has no
    grants to apply. Redshift keeps dbt's own view materialization.
-#}
{% materialization view, adapter='duckdb' -%}

  {%- set target_relation = this.incorporate(type='view') -%}
  {%- set existing_relation = load_cached_relation(this) -%}
  {%- set fingerprint = 'imagelake view md5 ' ~ local_md5(sql) -%}
  {%- set reusable = existing_relation is not none
      and existing_relation.is_view
      and not should_full_refresh()
      and not pre_hooks
      and not post_hooks -%}

  {%- if reusable and imagelake.view_comment(target_relation) == fingerprint -%}
    {%- call noop_statement('main', 'UNCHANGED', 'UNCHANGED', 0) -%}{%- endcall -%}
    {{ log(target_relation ~ ' is unchanged: not created again') }}
  {%- else -%}
    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}
    {%- if existing_relation is not none -%}
      {{ adapter.drop_relation(existing_relation) }}
    {%- endif -%}
    {%- call statement('main') -%}
      {{ get_create_view_as_sql(target_relation, sql) }}
    {%- endcall -%}
    {%- call statement('fingerprint') -%}
      comment on view {{ target_relation }} is '{{ fingerprint }}'
    {%- endcall -%}
    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {{ adapter.commit() }}
    {{ run_hooks(post_hooks, inside_transaction=False) }}
  {%- endif -%}

  {{ return({'relations': [target_relation]}) }}

{%- endmaterialization %}

{#- The comment DuckDB keeps for a view, or none. -#}
{% macro view_comment(relation) -%}
  {%- set found = run_query(
      "select comment from duckdb_views()"
      ~ " where database_name = '" ~ relation.database ~ "'"
      ~ " and schema_name = '" ~ relation.schema ~ "'"
      ~ " and view_name = '" ~ relation.identifier ~ "'"
  ) -%}
  {{ return(found.rows[0][0] if found.rows | length == 1 else none) }}
{%- endmacro %}
