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
        {{ lake_day('uploaded_at') }} as upload_date,
        kafka_partition,
        kafka_offset,
        kafka_timestamp,
        batch_id

    from source

)

-- Kafka delivers at least once and compaction may briefly show a row in two files:
-- an image counts once, its first delivery wins. An image's upload date never
-- changes, so partitioning by it too is the same ranking and lets a filter on
-- upload_date reach the Parquet scan.
select * from renamed
qualify row_number() over (
        partition by upload_date, image_id
        order by kafka_partition, kafka_offset, batch_id
    ) = 1
