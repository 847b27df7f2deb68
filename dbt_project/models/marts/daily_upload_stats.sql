with

uploads as (

    select * from {{ ref('stg_upload_events') }}

),

image_metadata as (

    select * from {{ ref('stg_image_metadata') }}

),

uploads_with_outcome as (

    select
        uploads.upload_date,
        uploads.image_id,
        uploads.client_id,
        uploads.size_bytes,
        uploads.image_format,
        image_metadata.status

    from uploads
    left join image_metadata
        on uploads.image_id = image_metadata.image_id

),

daily as (

    select
        upload_date,
        count(*) as images,
        sum(size_bytes) as bytes,
        count(distinct client_id) as distinct_clients,
        sum(case when image_format = 'jpeg' then 1 else 0 end) as jpeg_images,
        sum(case when image_format = 'png' then 1 else 0 end) as png_images,
        sum(case when image_format = 'webp' then 1 else 0 end) as webp_images,
        sum(case when image_format = 'gif' then 1 else 0 end) as gif_images,
        sum(case when image_format = 'tiff' then 1 else 0 end) as tiff_images,
        sum(case when status = 'processed' then 1 else 0 end) as processed_images,
        sum(case when status = 'failed' then 1 else 0 end) as failed_images,
        sum(case when status is null then 1 else 0 end) as pending_images

    from uploads_with_outcome
    group by upload_date

)

select * from daily
