-- Each image's derivatives in one row: how many were written or failed, their
-- bytes, and when the last one was first written (the image's derivatives are ready;
-- a later forced re-render does not move that).
with

derivatives as (

    select * from {{ ref('stg_derivatives') }}

),

by_image as (

    select
        upload_date,
        image_id,
        count(case when status = 'written' then 1 end) as derivatives_written,
        count(case when status = 'failed' then 1 end) as derivatives_failed,
        cast(sum(case when status = 'written' then size_bytes else 0 end) as bigint) as derivative_bytes,
        max(case when status = 'written' then first_written_at end) as derivatives_ready_at

    from derivatives
    group by upload_date, image_id

)

select * from by_image
