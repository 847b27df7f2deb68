{{
    config(
        incremental_strategy='changed_rows',
        row_key='image_id',
        dist='image_id',
        sort=['upload_date'],
        post_hook="{{ purge_expired('upload_date') }}"
    )
}}

-- One row per image found to duplicate an earlier one: exactly (same bytes) or
-- nearly (perceptual hashes a small Hamming distance apart). Per-image detail,
-- kept for the retention period. The original may be older than the window or
-- already expired: then its columns are null.
with

-- int_images is read twice, each time for only what is needed: a shared import
-- CTE would be materialized whole (every image, every column) on DuckDB.
duplicates as (

    select * from {{ ref('int_images') }}
    where {{ in_window('upload_date') }}
        and duplicate_of is not null

),

-- Only the originals the window's duplicates point at: a semi-join, not a join with every image.
originals as (

    select
        image_id,
        upload_date,
        client_id

    from {{ ref('int_images') }}
    where image_id in (select duplicates.duplicate_of from duplicates)

),

joined as (

    select
        duplicates.image_id,
        duplicates.upload_date,
        duplicates.uploaded_at,
        duplicates.client_id,
        duplicates.duplicate_of,
        duplicates.duplicate_kind,
        case
            when duplicates.duplicate_kind = 'exact' then 0
            else duplicates.duplicate_distance
        end as distance,
        duplicates.sha256,
        originals.upload_date as original_upload_date,
        originals.client_id as original_client_id,
        case
            when originals.client_id is null then null
            when originals.client_id = duplicates.client_id then true
            else false
        end as same_client

    from duplicates
    left join originals
        on duplicates.duplicate_of = originals.image_id

)

select * from joined
