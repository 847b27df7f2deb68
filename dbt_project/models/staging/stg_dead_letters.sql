with

source as (

    select * from {{ lake_source('dead_letters') }}

),

renamed as (

    select
        topic,
        kafka_partition,
        kafka_offset,
        kafka_timestamp,
        -- the day Kafka received the message (on Redshift null for offsets that expired unread)
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
