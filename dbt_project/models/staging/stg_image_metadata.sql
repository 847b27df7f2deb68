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
        mode as pixel_mode,
        bit_depth,
        frame_count,
        orientation,
        has_icc,
        has_gps,
        exif_captured_at,
        camera_make,
        camera_model,
        phash,
        brightness_mean,
        contrast,
        colourfulness,
        duplicate_of,
        duplicate_kind,
        duplicate_distance,
        uploaded_at,
        {{ lake_day('uploaded_at') }} as upload_date,
        processed_at,
        batch_id

    from source

),

-- The read rule (imagelake/lake/read_rule.py owns it; tests/unit/test_read_rule.py holds these
-- clauses to it). Of two copies of one batch's row (a correction beside a compacted file), the
-- earliest duplicate_of, then the first result (ROW_PREFERENCE)...
one_row_per_batch as (

    select * from renamed
    qualify row_number() over (
            partition by upload_date, batch_id, image_id
            order by duplicate_of asc nulls last, processed_at asc nulls last
        ) = 1

)

-- ...then an image processed in two batches (a redelivered event) keeps its first result
-- (IMAGE_ROW_ORDER).
select * from one_row_per_batch
qualify row_number() over (
        partition by upload_date, image_id
        order by processed_at asc nulls last, batch_id asc nulls last
    ) = 1
