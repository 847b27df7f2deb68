with

source as (

    select * from {{ lake_source('dead_letters') }}

),

renamed as (

    select
        topic,
        kafka_partition,
        kafka_offset,
        -- a range of offsets lost from Kafka is one dead letter (kafka_offset..last_offset)
        coalesce(last_offset, kafka_offset) as last_offset,
        kafka_timestamp,
        -- the day Kafka received the message, or for offsets that expired unread the day the loss
        -- was found (on Redshift, whose tables are not partitioned, null for those)
        {{ lake_day('kafka_timestamp') }} as received_date,
        reason,
        batch_id

    from source

)

-- A message is one (topic, partition, offset); a re-run batch or a compacted file shows it again.
select * from renamed
qualify row_number() over (
        partition by received_date, topic, kafka_partition, kafka_offset
        order by batch_id
    ) = 1
