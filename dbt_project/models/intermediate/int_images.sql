{{
    config(
        materialized='incremental',
        incremental_strategy='changed_rows',
        unique_key='upload_date',
        row_key='image_id',
        on_schema_change='append_new_columns',
        dist='image_id',
        sort=['upload_date', 'image_id'],
        post_hook="{{ purge_expired('upload_date') }}"
    )
}}

-- One row per uploaded image: the upload, its processing outcome, its duplicate
-- verdict and its derivatives. Per-image detail, kept for the retention period;
-- every daily mart is built from it. An incremental build replaces the days of
-- its window whole, so a re-run day ends up with the same rows.
with

uploads as (

    select * from {{ ref('stg_upload_events') }}
    where {{ in_window('upload_date') }}

),

image_metadata as (

    select * from {{ ref('stg_image_metadata') }}
    where {{ in_window('upload_date') }}

),

derivatives as (

    select * from {{ ref('int_derivatives_by_image') }}
    where {{ in_window('upload_date') }}

),

joined as (

    select
        uploads.image_id,
        uploads.upload_date,
        uploads.uploaded_at,
        uploads.client_id,
        uploads.sha256,
        uploads.size_bytes,
        uploads.image_format,
        uploads.kafka_timestamp,
        coalesce(image_metadata.status, 'pending') as status,
        image_metadata.failure_reason,
        image_metadata.width,
        image_metadata.height,
        image_metadata.phash,
        image_metadata.duplicate_of,
        image_metadata.duplicate_kind,
        image_metadata.duplicate_distance,
        image_metadata.processed_at,
        {{ seconds_between('uploads.uploaded_at', 'image_metadata.processed_at') }} as seconds_to_processed,
        coalesce(derivatives.derivatives_written, 0) as derivatives_written,
        coalesce(derivatives.derivatives_failed, 0) as derivatives_failed,
        coalesce(derivatives.derivative_bytes, 0) as derivative_bytes,
        derivatives.derivatives_ready_at,
        {{ seconds_between('uploads.uploaded_at', 'derivatives.derivatives_ready_at') }} as seconds_to_derivatives

    from uploads
    left join image_metadata
        on uploads.upload_date = image_metadata.upload_date
            and uploads.image_id = image_metadata.image_id
    left join derivatives
        on uploads.upload_date = derivatives.upload_date
            and uploads.image_id = derivatives.image_id

)

select * from joined
