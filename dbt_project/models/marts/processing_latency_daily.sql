-- Per upload date: how long images took from upload to processed (metadata in the
-- curated zone; failed and pending images are left out) and from upload to all
-- their derivatives written; p50, p95, max in seconds. Each percentile set has its
-- own CTE: Redshift wants every percentile of one query to order by the same
-- column. An aggregate: kept.
with

images as (

    select * from {{ ref('int_images') }}
    where {{ in_window('upload_date') }}

),

to_processed as (

    select
        upload_date,
        count(*) as processed_images,
        {{ duration_percentiles('seconds_to_processed', 'processed') }}

    from images
    where status = 'processed'
    group by upload_date

),

to_derivatives as (

    select
        upload_date,
        count(*) as images_with_derivatives,
        {{ duration_percentiles('seconds_to_derivatives', 'derivatives') }}

    from images
    where seconds_to_derivatives is not null
    group by upload_date

),

days as (

    select upload_date from to_processed
    union all
    select upload_date from to_derivatives

),

distinct_days as (

    select distinct upload_date from days

),

latency as (

    select
        days.upload_date,
        coalesce(to_processed.processed_images, 0) as processed_images,
        to_processed.processed_p50_s,
        to_processed.processed_p95_s,
        to_processed.processed_max_s,
        coalesce(to_derivatives.images_with_derivatives, 0) as images_with_derivatives,
        to_derivatives.derivatives_p50_s,
        to_derivatives.derivatives_p95_s,
        to_derivatives.derivatives_max_s

    from distinct_days as days
    left join to_processed
        on days.upload_date = to_processed.upload_date
    left join to_derivatives
        on days.upload_date = to_derivatives.upload_date

)

select * from latency
