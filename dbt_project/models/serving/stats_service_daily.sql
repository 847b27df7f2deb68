-- What GET /v1/stats/service serves an operator: the service per day - images, bytes,
-- formats, duplicates, processing latency and storage per zone - for the days the
-- statistics snapshot reaches back. One row per day that any of the three marts has.
with

uploads as (

    select * from {{ ref('daily_upload_stats') }}
    where upload_date >= {{ stats_history_start() }}

),

latency as (

    select * from {{ ref('processing_latency_daily') }}
    where upload_date >= {{ stats_history_start() }}

),

storage as (

    select * from {{ ref('storage_usage_daily') }}
    where usage_date >= {{ stats_history_start() }}

),

storage_by_day as (

    select
        usage_date,
        cast(sum(case when zone = 'raw' then objects else 0 end) as bigint) as raw_objects,
        cast(sum(case when zone = 'raw' then stored_bytes else 0 end) as bigint) as raw_bytes,
        cast(sum(case when zone = 'curated' then objects else 0 end) as bigint) as curated_objects,
        cast(sum(case when zone = 'curated' then stored_bytes else 0 end) as bigint) as curated_bytes,
        cast(sum(case when zone = 'derivatives' then objects else 0 end) as bigint) as derivatives_objects,
        cast(sum(case when zone = 'derivatives' then stored_bytes else 0 end) as bigint) as derivatives_bytes,
        max(snapshot_at) as storage_listed_at

    from storage
    group by usage_date

),

days as (

    select upload_date as stats_date from uploads
    union all
    select upload_date as stats_date from latency
    union all
    select usage_date as stats_date from storage_by_day

),

distinct_days as (

    select distinct stats_date from days

),

served as (

    select
        days.stats_date,
        coalesce(uploads.images, 0) as images,
        coalesce(uploads.bytes, 0) as bytes,
        coalesce(uploads.jpeg_images, 0) as jpeg_images,
        coalesce(uploads.png_images, 0) as png_images,
        coalesce(uploads.webp_images, 0) as webp_images,
        coalesce(uploads.gif_images, 0) as gif_images,
        coalesce(uploads.tiff_images, 0) as tiff_images,
        coalesce(uploads.duplicate_images, 0) as duplicate_images,
        coalesce(uploads.failed_images, 0) as failed_images,
        latency.processed_p50_s,
        latency.processed_p95_s,
        storage_by_day.raw_objects,
        storage_by_day.raw_bytes,
        storage_by_day.curated_objects,
        storage_by_day.curated_bytes,
        storage_by_day.derivatives_objects,
        storage_by_day.derivatives_bytes,
        storage_by_day.storage_listed_at

    from distinct_days as days
    left join uploads
        on days.stats_date = uploads.upload_date
    left join latency
        on days.stats_date = latency.upload_date
    left join storage_by_day
        on days.stats_date = storage_by_day.usage_date

)

select * from served
