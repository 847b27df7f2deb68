with

source as (

    select * from {{ lake_source('upload_events') }}

),

renamed as (

    select
        image_id,
        client_id,
        key as raw_key,
        sha256,
        size_bytes,
        lower(format) as image_format,
        uploaded_at,
        cast(uploaded_at as date) as upload_date,
        kafka_partition,
        kafka_offset,
        kafka_timestamp,
        batch_id

    from source

),

-- Kafka delivers at least once: an event seen twice counts once (its first offset wins).
deduplicated as (

    select
        *,
        row_number() over (
            partition by image_id
            order by kafka_partition, kafka_offset
        ) as delivery_rank

    from renamed

)

select
    image_id,
    client_id,
    raw_key,
    sha256,
    size_bytes,
    image_format,
    uploaded_at,
    upload_date,
    kafka_partition,
    kafka_offset,
    kafka_timestamp,
    batch_id

from deduplicated
where delivery_rank = 1
