-- Every image of a day has one format, one size band and one status, so each
-- mix adds up to the day's images. Fails when an upstream value (a new format,
-- a status) has no column here to be counted in.
select *
from {{ ref('daily_upload_stats') }}
where jpeg_images + png_images + webp_images + gif_images + tiff_images <> images
    or images_under_100kb + images_100kb_to_1mb + images_1mb_to_10mb + images_over_10mb <> images
    or processed_images + failed_images + pending_images <> images
