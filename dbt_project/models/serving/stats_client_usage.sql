-- What GET /v1/stats/usage serves: each client's usage per upload date, for the days
-- the statistics snapshot reaches back (imagelake/settings.py, STATS_HISTORY_DAYS). Each
-- warehouse build publishes this table to the lake as a Parquet snapshot
-- (assets/stats_snapshot.py), which the API replicas read: the API never opens the warehouse.
with

usage as (

    select * from {{ ref('client_usage_daily') }}
    where upload_date >= {{ stats_history_start() }}

),

served as (

    select
        upload_date,
        client_id,
        uploads,
        bytes_uploaded,
        duplicate_uploads,
        failures,
        derivatives_ready

    from usage

)

select * from served
