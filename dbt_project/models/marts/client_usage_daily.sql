{{
    config(
        dist='client_id',
        sort=['upload_date', 'client_id']
    )
}}

-- One row per client (API key) and upload date: what the client sent and what became of it.
with

images as (

    select * from {{ ref('int_images') }}
    where {{ in_window('upload_date') }}

),

client_daily as (

    select
        upload_date,
        client_id,
        count(*) as uploads,
        cast(sum(size_bytes) as bigint) as bytes_uploaded,
        count(case when duplicate_of is not null then 1 end) as duplicate_uploads,
        count(case when duplicate_kind = 'exact' then 1 end) as exact_duplicates,
        count(case when duplicate_kind = 'near' then 1 end) as near_duplicates,
        count(case when status = 'processed' then 1 end) as processed,
        count(case when status = 'failed' then 1 end) as failures,
        cast(sum(derivative_bytes) as bigint) as derivative_bytes,
        count(case when derivatives_ready_at is not null then 1 end) as derivatives_ready

    from images
    group by upload_date, client_id

)

select * from client_daily
