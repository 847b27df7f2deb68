-- One row per upload date. An aggregate: kept after the images it counts expire.
with

images as (

    select * from {{ ref('int_images') }}
    where {{ in_window('upload_date') }}

),

dead_letters as (

    select * from {{ ref('stg_dead_letters') }}
    where {{ in_window('received_date') }}

),

uploads_daily as (

    select
        upload_date,
        count(*) as images,
        cast(sum(size_bytes) as bigint) as bytes,
        count(distinct client_id) as distinct_clients,
        count(case when image_format = 'jpeg' then 1 end) as jpeg_images,
        count(case when image_format = 'png' then 1 end) as png_images,
        count(case when image_format = 'webp' then 1 end) as webp_images,
        count(case when image_format = 'gif' then 1 end) as gif_images,
        count(case when image_format = 'tiff' then 1 end) as tiff_images,
        count(case when size_bytes < 100000 then 1 end) as images_under_100kb,
        count(case when size_bytes >= 100000 and size_bytes < 1000000 then 1 end) as images_100kb_to_1mb,
        count(case when size_bytes >= 1000000 and size_bytes < 10000000 then 1 end) as images_1mb_to_10mb,
        count(case when size_bytes >= 10000000 then 1 end) as images_over_10mb,
        count(case when status = 'processed' then 1 end) as processed_images,
        count(case when status = 'failed' then 1 end) as failed_images,
        count(case when status = 'pending' then 1 end) as pending_images,
        count(case when duplicate_of is not null then 1 end) as duplicate_images

    from images
    group by upload_date

),

dead_letters_daily as (

    select
        received_date as upload_date,
        count(*) as dead_letters

    from dead_letters
    where received_date is not null
    group by received_date

),

daily as (

    select
        coalesce(uploads_daily.upload_date, dead_letters_daily.upload_date) as upload_date,
        coalesce(uploads_daily.images, 0) as images,
        coalesce(uploads_daily.bytes, 0) as bytes,
        coalesce(uploads_daily.distinct_clients, 0) as distinct_clients,
        coalesce(uploads_daily.jpeg_images, 0) as jpeg_images,
        coalesce(uploads_daily.png_images, 0) as png_images,
        coalesce(uploads_daily.webp_images, 0) as webp_images,
        coalesce(uploads_daily.gif_images, 0) as gif_images,
        coalesce(uploads_daily.tiff_images, 0) as tiff_images,
        coalesce(uploads_daily.images_under_100kb, 0) as images_under_100kb,
        coalesce(uploads_daily.images_100kb_to_1mb, 0) as images_100kb_to_1mb,
        coalesce(uploads_daily.images_1mb_to_10mb, 0) as images_1mb_to_10mb,
        coalesce(uploads_daily.images_over_10mb, 0) as images_over_10mb,
        coalesce(uploads_daily.processed_images, 0) as processed_images,
        coalesce(uploads_daily.failed_images, 0) as failed_images,
        coalesce(uploads_daily.pending_images, 0) as pending_images,
        coalesce(uploads_daily.duplicate_images, 0) as duplicate_images,
        coalesce(dead_letters_daily.dead_letters, 0) as dead_letters

    from uploads_daily
    full outer join dead_letters_daily
        on uploads_daily.upload_date = dead_letters_daily.upload_date

)

select * from daily
