{{
    config(
        unique_key='usage_date',
        sort=['usage_date', 'zone']
    )
}}

-- Objects and bytes stored per zone (raw, curated, derivatives) on each day, from
-- that day's latest listing of the lake. An aggregate: kept.
with

inventory as (

    select * from {{ ref('stg_storage_inventory') }}
    where {{ in_window('usage_date') }}

),

by_zone as (

    select
        usage_date,
        zone,
        count(distinct prefix) as prefixes,
        cast(sum(objects) as bigint) as objects,
        cast(sum(stored_bytes) as bigint) as stored_bytes,
        max(snapshot_at) as snapshot_at

    from inventory
    group by usage_date, zone

)

select * from by_zone
