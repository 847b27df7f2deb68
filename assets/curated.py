"""The curated zone: per-image metadata for each batch."""

import time
from datetime import UTC, datetime

import dagster as dg

from assets.metadata import files_metadata, preview
from assets.partitions import upload_batches
from assets.raw import raw_images, upload_events
from imagelake import layout
from imagelake.batches import build_metadata_rows, events_from_table, unique_events
from imagelake.parquet import read_batch_table, write_batch_table
from imagelake.settings import get_settings
from orchestration.resources import LakeResource


@dg.asset(
    partitions_def=upload_batches,
    deps=[upload_events, raw_images],
    group_name="curated",
    kinds={"pillow", "parquet"},
    description=(
        "One row per uploaded image of the batch under `curated/image_metadata/`: format, "
        "dimensions, bytes and sha256, or `failed` with the reason."
    ),
)
def image_metadata(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    batch_id = context.partition_key
    started = time.monotonic()
    store = lake.lake()
    events = unique_events(events_from_table(read_batch_table(store, "upload_events", batch_id)))
    previous = read_batch_table(store, layout.IMAGE_METADATA, batch_id)
    first_seen = dict(
        zip(previous["image_id"].to_pylist(), previous["processed_at"].to_pylist(), strict=True)
    )
    now = datetime.now(UTC)
    rows = build_metadata_rows(
        events,
        fetch=store.get,
        processed_at=lambda image_id: first_seen.get(image_id, now),
        batch_id=batch_id,
        max_pixels=get_settings().max_image_pixels,
    )
    files = write_batch_table(
        store, layout.IMAGE_METADATA, batch_id, rows, [layout.dt_of(r["uploaded_at"]) for r in rows]
    )
    failed = [r for r in rows if r["status"] == "failed"]
    for row in failed:
        context.log.warning(f"image {row['image_id']} failed: {row['error']}")
    return dg.MaterializeResult(
        metadata={
            "images": len(rows),
            "processed": len(rows) - len(failed),
            "failed": len(failed),
            "rerun": bool(first_seen),
            "duration_s": round(time.monotonic() - started, 3),
            **files_metadata(files),
            "preview": preview(
                rows, ["image_id", "status", "format", "width", "height", "size_bytes", "error"]
            ),
        }
    )
