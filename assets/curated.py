"""The curated zone of a batch: image metadata, the duplicate index and the image catalog.

One step per batch produces three assets, because they are one computation:
the images are decoded once, their hashes go to the index, duplicates are
resolved against the index, the rows land in ``image_metadata`` and the
outcome in the catalog. Each asset is reported as soon as it is written, so
a catalog outage shows as ``image_catalog`` failing after ``image_metadata``
succeeded, and a re-run completes it.
"""

import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import dagster as dg

from assets.materialization import files_metadata, preview
from assets.partitions import upload_batches
from assets.raw import raw_images, upload_events
from imagelake.catalog import CatalogUnavailable
from imagelake.lake import layout
from imagelake.lake.layout import BatchId
from imagelake.lake.store import Lake
from imagelake.lake.tables import CorruptLakeFile, read_batch_table
from imagelake.realtime import batch_checks
from imagelake.realtime.batches import build_metadata_rows, events_from_table, unique_events
from imagelake.realtime.duplicate_resolution import (
    Settlement,
    first_processed_at,
    own_client_verdicts,
    settle,
)
from imagelake.realtime.hash_index import HashIndex
from imagelake.settings import get_settings
from orchestration.resources import CatalogResource, LakeResource
from orchestration.retries import STEP_RETRY

IMAGE_METADATA = dg.AssetKey(layout.IMAGE_METADATA)
HASH_INDEX = dg.AssetKey(layout.HASH_INDEX)
IMAGE_CATALOG = dg.AssetKey("image_catalog")

CHECKS = [
    dg.AssetCheckSpec(
        "rows_match_events",
        asset=IMAGE_METADATA,
        description="One row per image announced by the batch: rows = events - dead letters "
        "(an event delivered twice counts once).",
    ),
    dg.AssetCheckSpec("sha256_present", asset=IMAGE_METADATA, description="No row without a sha256."),
    dg.AssetCheckSpec(
        "hash_for_every_decodable_image",
        asset=IMAGE_METADATA,
        description="Every processed image has a perceptual hash; every failed one a reason.",
    ),
]


PREVIEW_COLUMNS = (
    "image_id",
    "status",
    "format",
    "width",
    "height",
    "phash",
    "duplicate_of",
    "duplicate_kind",
    "duplicate_distance",
    "error",
)


#: Images a log line names; the rest are counted. One line per batch, not one per image: every line is
#: an event the run writes to the instance's database (the rows themselves are in the lake).
LOGGED_IMAGES = 20


def listed(items: list[str], limit: int = LOGGED_IMAGES) -> str:
    """``items`` for a log line: the first ``limit``, then how many more."""
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _failure_kinds(rows: list[dict]) -> dict[str, int]:
    return dict(Counter(r["error"].split(":", 1)[0] for r in rows if r["status"] == "failed"))


def _check_results(
    batch: BatchId, store: Lake, index: HashIndex, events: list[str]
) -> list[dg.AssetCheckResult]:
    """Checks of the metadata files the run left in the lake, not of its own memory.

    ``events``: the image ids of the batch's archived events, as the run read them.
    """
    written = read_batch_table(store, layout.IMAGE_METADATA, str(batch)).to_pylist()
    dead = read_batch_table(store, "dead_letters", str(batch)).num_rows
    verdicts = {
        "rows_match_events": batch_checks.rows_match_events(
            batch, events, dead, [r["image_id"] for r in written], index.owner
        ),
        "sha256_present": batch_checks.sha256_present(written),
        "hash_for_every_decodable_image": batch_checks.hash_for_every_decodable_image(written),
    }
    return [
        dg.AssetCheckResult(
            asset_key=IMAGE_METADATA,
            check_name=name,
            passed=v.passed,
            description=v.description,
            metadata=dict(v.figures),
        )
        for name, v in verdicts.items()
    ]


def _metadata_result(settled: Settlement, extract_s: float, received: int) -> dg.MaterializeResult:
    """``received``: valid events of the batch, an event delivered twice counted twice."""
    rows = settled.rows
    kinds = Counter(r["duplicate_kind"] for r in rows if r["duplicate_kind"])
    failed = [r for r in rows if r["status"] == "failed"]
    return dg.MaterializeResult(
        asset_key=IMAGE_METADATA,
        metadata={
            "images": len(rows),
            "processed": len(rows) - len(failed),
            "failed": len(failed),
            "failures": dg.MetadataValue.json(_failure_kinds(rows)),
            "duplicates_exact": kinds.get("exact", 0),
            "duplicates_near": kinds.get("near", 0),
            "redelivered": received - len(rows),
            "corrected_rows_of_other_batches": sum(1 for r in settled.corrected if r["duplicate_of"]),
            "corrected_files": dg.MetadataValue.json([f.key for f in settled.corrected_files]),
            "resolution_rounds": settled.rounds,
            "extract_s": round(extract_s, 3),
            "resolve_s": round(settled.load_s + settled.search_s, 3),
            # Other batches' files it rewrote count too: the warehouse refreshes the days of all of them.
            **files_metadata([*settled.files, *settled.corrected_files]),
            "preview": preview(rows, PREVIEW_COLUMNS),
        },
    )


@dg.multi_asset(
    name="image_metadata",
    partitions_def=upload_batches,
    retry_policy=STEP_RETRY,
    specs=[
        dg.AssetSpec(
            HASH_INDEX,
            deps=[upload_events, raw_images],
            group_name="curated",
            kinds={"numpy", "parquet"},
            description=(
                "The duplicate index under `curated/hash_index/`: every image a batch has seen, with its "
                "sha256 and 64-bit perceptual hash, one file per batch. Searched vectorised over the "
                "retention window for exact and near duplicates."
            ),
        ),
        dg.AssetSpec(
            IMAGE_METADATA,
            deps=[upload_events, raw_images, HASH_INDEX],
            group_name="curated",
            kinds={"pillow", "parquet"},
            description=(
                "One row per uploaded image of the batch under `curated/image_metadata/`: format, "
                "displayed size, mode, bit depth, frames, EXIF facts, sha256, perceptual hash, "
                "brightness, contrast, colourfulness and the earliest image it duplicates; or `failed` "
                "with the reason."
            ),
        ),
        dg.AssetSpec(
            IMAGE_CATALOG,
            deps=[IMAGE_METADATA],
            group_name="curated",
            kinds={"dynamodb"},
            description=(
                "The image catalog on DynamoDB: one item per image with its status (`accepted` by the "
                "API, then `processed` or `failed`), metadata, duplicate info and derivative keys; "
                "items expire with the retention period. Read by `GET /v1/images/{image_id}`."
            ),
        ),
    ],
    check_specs=CHECKS,
)
def image_metadata(context: dg.AssetExecutionContext, lake: LakeResource, catalog: CatalogResource):
    """Decode each image once, index it, resolve duplicates, write the rows, then the catalog."""
    settings = get_settings()
    batch = BatchId.parse(context.partition_key)
    batch_id = str(batch)
    store = lake.lake()

    started = time.monotonic()
    received = events_from_table(read_batch_table(store, "upload_events", batch_id))
    events = unique_events(received)
    first_seen = first_processed_at(store, batch_id, {event.dt for event in events})
    now = datetime.now(UTC)
    rows = build_metadata_rows(
        events,
        fetch=store.get,
        processed_at=lambda image_id: first_seen.get(image_id, now),
        batch_id=batch_id,
        max_pixels=settings.max_image_pixels,
    )
    extract_s = time.monotonic() - started
    failed_rows = [f"{r['image_id']} ({r['error']})" for r in rows if r["status"] == "failed"]
    if failed_rows:
        context.log.warning(f"{len(failed_rows)} image(s) failed: {listed(failed_rows)}")

    window = timedelta(days=settings.retention_days)
    try:
        settled = settle(store, batch_id, rows, threshold=settings.duplicate_max_distance, window=window)
    except CorruptLakeFile as exc:  # stays damaged until someone acts: failing once says so
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    duplicates = [
        f"{r['image_id']} of {r['duplicate_of']} ({r['duplicate_kind']}, {r['duplicate_distance']})"
        for r in settled.rows
        if r["duplicate_of"]
    ]
    if duplicates:
        context.log.info(f"{len(duplicates)} duplicate(s): {listed(duplicates)}")
    if settled.corrected_files:
        context.log.info(
            f"earlier images of this batch changed duplicate answers in {len(settled.corrected_files)} "
            f"file(s) of other batches: {', '.join(f.key for f in settled.corrected_files)}"
        )
    yield dg.MaterializeResult(
        asset_key=HASH_INDEX,
        metadata={
            "entries_written": sum(f.rows for f in settled.index_files),
            "window_entries": settled.index_entries,
            "window_files": settled.index_segments,
            "merged_into": dg.MetadataValue.json(settled.merged_files),
            "window_days": settings.retention_days,
            "max_distance": settings.duplicate_max_distance,
            "load_s": round(settled.load_s, 3),
            "search_s": round(settled.search_s, 3),
            **files_metadata(settled.index_files),
        },
    )
    yield _metadata_result(settled, extract_s, len(received))
    yield from _check_results(batch, store, settled.index, [e.image_id for e in received])

    started = time.monotonic()
    try:
        outcomes = own_client_verdicts(
            settled.index, [*settled.rows, *settled.corrected], settings.duplicate_max_distance, window
        )
        written = catalog.catalog().record_outcomes(outcomes, settings.retention_days)
    except CatalogUnavailable as exc:
        raise dg.Failure(
            description=(
                f"The image catalog (DynamoDB table {catalog.table} at {catalog.endpoint or 'AWS'}) is "
                f"unavailable, so the outcome of {batch_id} is not recorded: {exc}. The lake already "
                "holds the batch's rows; re-run the batch once DynamoDB is back: it rewrites identical "
                "files and completes the catalog. Items already written are complete."
            ),
            metadata={"batch_id": batch_id, "rows_in_lake": len(settled.rows)},
        ) from exc
    failed = sum(r["status"] == "failed" for r in settled.rows)
    context.log.info(
        f"{batch_id}: {len(settled.rows)} images, {failed} failed, {settled.duplicates} duplicates; "
        f"{written} catalog items written"
    )
    yield dg.MaterializeResult(
        asset_key=IMAGE_CATALOG,
        metadata={
            "items_written": written,
            "items_of_other_batches": len(settled.corrected),
            "table": catalog.table,
            "duration_s": round(time.monotonic() - started, 3),
        },
    )
