"""The raw zone: uploaded images (written by the API) and each Kafka batch, archived."""

import time
from datetime import UTC, datetime

import dagster as dg

from assets.materialization import files_metadata, preview
from assets.partitions import PLANNED_ON_TAG, upload_batches
from imagelake.catalog import REFUSED, CatalogUnavailable
from imagelake.lake import layout
from imagelake.lake.layout import RAW_IMAGES, BatchId
from imagelake.lake.tables import write_batch_table
from imagelake.realtime.batches import split_messages
from imagelake.realtime.kafka import read_batch
from imagelake.settings import get_settings
from orchestration.resources import CatalogResource, KafkaResource, LakeResource
from orchestration.retries import STEP_RETRY

raw_images = dg.AssetSpec(
    key="raw_images",
    group_name="raw",
    kinds={"s3"},
    description=(
        f"Uploaded image bytes under `{RAW_IMAGES}/dt=YYYY-MM-DD/<image_id>`, written once by the "
        "upload API (create-only puts). Kept for the retention period."
    ),
)


@dg.asset(
    partitions_def=upload_batches,
    retry_policy=STEP_RETRY,
    group_name="raw",
    kinds={"kafka", "parquet"},
    description=(
        "One Kafka micro-batch of upload events, archived as Parquet under `raw/events/`; "
        "messages that are not valid events go to `raw/dead_letters/` with the reason."
    ),
)
def upload_events(
    context: dg.AssetExecutionContext, lake: LakeResource, kafka: KafkaResource, catalog: CatalogResource
) -> dg.MaterializeResult:
    batch = BatchId.parse(context.partition_key)
    started = time.monotonic()
    with kafka.consumer() as consumer:
        messages, missing = read_batch(consumer, batch, get_settings().kafka_poll_timeout_s)
    # The day the sensor planned the batch (a re-run keeps it, so it rewrites the same files).
    detected_on = context.run.tags.get(PLANNED_ON_TAG) or layout.dt_of(datetime.now(UTC))
    split = split_messages(batch, messages, missing, detected_on)
    # Each upload is claimed for this batch before anything of it is archived: an upload the API
    # refused first (imagelake/catalog.py) is set aside as a dead letter, never counted.
    try:
        claims = catalog.catalog().claim_all([e.image_id for e in split.events], str(batch))
    except CatalogUnavailable as exc:
        raise dg.Failure(
            description=(
                f"The image catalog (DynamoDB table {catalog.table} at {catalog.endpoint or 'AWS'}) is "
                f"unavailable, so {batch}'s uploads cannot be claimed and nothing of the batch is written: "
                f"{exc}. failed_batch_sensor runs the batch again later; or re-run the batch once DynamoDB "
                "is back."
            ),
            metadata={"batch_id": str(batch), "events": len(split.events)},
        ) from exc
    refused = frozenset(i for i, outcome in claims.items() if outcome == REFUSED)
    if refused:
        split = split_messages(batch, messages, missing, detected_on, refused)
    store = lake.lake()
    files = write_batch_table(store, "upload_events", str(batch), split.event_rows, split.event_dts)
    files += write_batch_table(store, "dead_letters", str(batch), split.dead_rows, split.dead_dts)
    for row in split.dead_rows:
        context.log.warning(f"offset {row['kafka_offset']} of {batch} dead-lettered: {row['reason']}")
    lost = sum(last - first + 1 for first, last in missing)
    context.log.info(
        f"{batch}: {len(split.event_rows)} events, {len(split.dead_rows)} dead letters, {len(files)} files"
    )
    return dg.MaterializeResult(
        metadata={
            "events": len(split.event_rows),
            "dead_letters": len(split.dead_rows),
            "offsets_lost_from_kafka": lost,
            "refused_uploads_set_aside": len(refused),
            "kafka_partition": batch.partition,
            "offsets": f"{batch.first}-{batch.last}",
            "duration_s": round(time.monotonic() - started, 3),
            **files_metadata(files),
            "preview": preview(
                split.event_rows, ["image_id", "client_id", "format", "size_bytes", "kafka_offset"]
            ),
        }
    )


dead_letters = dg.AssetSpec(
    key="dead_letters",
    deps=[upload_events],
    group_name="raw",
    kinds={"parquet"},
    description=(
        "Messages on the upload topic that are not valid upload events, kept verbatim with the "
        "reason under `raw/dead_letters/`; written by each `upload_events` run, beside the events."
    ),
)
