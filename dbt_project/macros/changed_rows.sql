{#-
    Incremental strategy `changed_rows`, for per-image detail tables. Like
    `delete+insert` keyed on the day (`unique_key`), the days the new rows
    carry end up holding exactly the new rows; but a row that is the same in
    the table and in the build stays where it is, and only rows that are new,
    changed or gone are deleted and written. A row is named by `row_key`.

    Why: the refresh rebuilds today every half minute and the lookback days
    every hour, and nearly all of their rows have not changed since the last
    build. Deleting and writing them all again costs the writes and then a
    compaction of the deleted rows (a vacuum at DuckDB's next checkpoint; a
    VACUUM DELETE on Redshift), work that grows with the day's images whether
    or not they changed. The comparison costs two set differences over the
    window's rows, and no write for a row that stayed the same (measured in
    docs/benchmarks.md, section "bench-marts").

    Rows are compared whole with EXCEPT, which takes two nulls as equal. The
    days are looked up `distinct`: a semi-join on every new row's day would
    look the day up once per new row instead of once per day of the window
    (docs/benchmarks.md, section "bench-marts").
    The new rows must be unique on `row_key` (a data test says so).
-#}
{% macro get_incremental_changed_rows_sql(arg_dict) -%}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set build = arg_dict['temp_relation'] -%}
    {%- set day = arg_dict['unique_key'] -%}
    {%- set key = arg_dict.get('row_key') or config.require('row_key') -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    {%- if day is not string -%}
        {{ exceptions.raise_compiler_error("changed_rows: unique_key must be the one day column of " ~ target) }}
    {%- endif -%}
    {%- set kept -%}
        select {{ columns }} from {{ target }}
        where {{ day }} in (select distinct {{ day }} from {{ build }})
    {%- endset -%}

    delete from {{ target }}
    where {{ day }} in (select distinct {{ day }} from {{ build }})
        and {{ key }} in (
            select {{ key }} from (
                {{ kept }}
                except
                select {{ columns }} from {{ build }}
            ) as stale_rows
        );

    insert into {{ target }} ({{ columns }})
    select {{ columns }} from (
        select {{ columns }} from {{ build }}
        except
        {{ kept }}
    ) as fresh_rows

{%- endmacro %}
