with

source as (

    select * from {{ lake_source('image_metadata') }}

),

renamed as (

    select
        image_id,
        client_id,
        key as raw_key,
        status,
        error as failure_reason,
        sha256,
        size_bytes,
        lower(format) as image_format,
        width,
        height,
        uploaded_at,
        cast(uploaded_at as date) as upload_date,
        processed_at,
        batch_id

    from source

),

-- An image processed in two batches (a redelivered event) keeps its first result.
deduplicated as (

    select
        *,
        row_number() over (
            partition by image_id
            order by processed_at, batch_id
        ) as result_rank

    from renamed

)

select
    image_id,
    client_id,
    raw_key,
    status,
    failure_reason,
    sha256,
    size_bytes,
    image_format,
    width,
    height,
    uploaded_at,
    upload_date,
    processed_at,
    batch_id

from deduplicated
where result_rank = 1
