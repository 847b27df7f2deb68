with

source as (

    select * from {{ lake_source('derivatives') }}

),

renamed as (

    select
        image_id,
        size as target_size,
        lower(format) as derivative_format,
        key as derivative_key,
        width,
        height,
        size_bytes,
        status,
        error as failure_reason,
        source_sha256,
        uploaded_at,
        {{ lake_day('uploaded_at') }} as upload_date,
        created_at,
        run_id,
        first_written_at as carried_first_written_at

    from source

)

-- A forced re-run writes a derivative again: the latest attempt per image, size and format
-- wins, and the derivative has been there since its first write. The job carries that moment
-- into each new row (the old row may be merged or compacted away); files written before it
-- did lack the column, so the window also sees every attempt still stored (qualify filters after it).
select
    image_id,
    target_size,
    derivative_format,
    derivative_key,
    width,
    height,
    size_bytes,
    status,
    failure_reason,
    source_sha256,
    uploaded_at,
    upload_date,
    created_at,
    run_id,
    min(
        coalesce(carried_first_written_at, case when status = 'written' then created_at end)
    ) over (
        partition by upload_date, image_id, target_size, derivative_format
    ) as first_written_at

from renamed
qualify row_number() over (
        partition by upload_date, image_id, target_size, derivative_format
        order by created_at desc, run_id desc
    ) = 1
