{#-
    The incremental window: the days a build recomputes.

    Dagster passes the days of its partition (or partition range) as the
    environment variables IMAGELAKE_MIN_DATE and IMAGELAKE_MAX_DATE (YYYY-MM-DD,
    inclusive); by hand, `--vars '{min_date: ..., max_date: ...}'` does the same.
    Environment variables are read only while models run, so a new window does
    not make dbt parse the project again (new --vars do). With neither, a build
    recomputes the last `lookback_days` days up to the day the run started
    (UTC), which picks up late events on their upload day. The dates are
    rendered as literals: the compiled SQL shows which days a run touched.
-#}
{% macro window_bound(name) -%}
    {{ return(var(name, none) or env_var('IMAGELAKE_' ~ name | upper, '') or none) }}
{%- endmacro %}

{% macro window_start() -%}
    {%- set day = window_bound('min_date') or (run_started_at.date() - modules.datetime.timedelta(days=var('lookback_days') | int)).isoformat() -%}
    cast('{{ day }}' as date)
{%- endmacro %}

{% macro window_end() -%}
    {%- set day = window_bound('max_date') or run_started_at.date().isoformat() -%}
    cast('{{ day }}' as date)
{%- endmacro %}

{#- Rows of the window: on an incremental build only; a first (or full-refresh) build takes every day. -#}
{% macro in_window(date_column) -%}
    {%- if is_incremental() -%}
        {{ date_column }} between {{ window_start() }} and {{ window_end() }}
    {%- else -%}
        1 = 1
    {%- endif -%}
{%- endmacro %}

{#-
    The first day per-image detail still holds: the day `retention_days` ago, whose last
    images are younger than the retention period. The same rule as garbage collection's
    (imagelake/batch/garbage_collection.py, oldest_day_kept), so the detail covers exactly the days the lake holds.
-#}
{% macro retention_start() -%}
    {%- set day = run_started_at.date() - modules.datetime.timedelta(days=var('retention_days') | int) -%}
    cast('{{ day.isoformat() }}' as date)
{%- endmacro %}

{#- Post-hook of per-image detail tables: drop what is older than the retention period. -#}
{% macro purge_expired(date_column) -%}
    delete from {{ this }} where {{ date_column }} < {{ retention_start() }}
{%- endmacro %}

{#-
    The first day the statistics snapshot serves (models/serving/): the days the API answers,
    STATS_HISTORY_DAYS in imagelake/settings.py, exported as IMAGELAKE_STATS_HISTORY_DAYS.
-#}
{% macro stats_history_start() -%}
    {%- set day = run_started_at.date() - modules.datetime.timedelta(days=env_var('IMAGELAKE_STATS_HISTORY_DAYS', '400') | int) -%}
    cast('{{ day.isoformat() }}' as date)
{%- endmacro %}
