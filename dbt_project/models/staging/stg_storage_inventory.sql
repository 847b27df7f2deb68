with

source as (

    select * from {{ lake_source('storage_inventory') }}

),

renamed as (

    select
        snapshot_at,
        {{ lake_day('snapshot_at') }} as usage_date,
        zone,
        prefix,
        data_date,
        objects,
        bytes as stored_bytes

    from source

)

-- The garbage collector lists the lake once a day; a re-run lists it again. A day's
-- usage is its latest listing, and a row seen twice (compaction) counts once.
select * from renamed
qualify
    dense_rank() over (partition by usage_date order by snapshot_at desc) = 1
    and row_number() over (
        partition by usage_date, snapshot_at, zone, prefix, data_date
        order by objects
    ) = 1
