"""The Parquet schemas of the lake's tables, documented in one place.

Every batch file of a table is written with exactly this schema (column order
included), so dbt, DuckDB and Spark read one stable shape. Adding a nullable
column at the end is a compatible change; anything else is a new table version.
"""

from __future__ import annotations

import pyarrow as pa

_TS = pa.timestamp("us", tz="UTC")

#: ``raw/events``: every valid upload event of a batch, with its Kafka coordinates.
UPLOAD_EVENTS = pa.schema(
    [
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("client_id", pa.string(), nullable=False),
        pa.field("key", pa.string(), nullable=False),  # raw object key
        pa.field("sha256", pa.string(), nullable=False),
        pa.field("size_bytes", pa.int64(), nullable=False),  # bytes as uploaded
        pa.field("format", pa.string(), nullable=False),  # Pillow format name, e.g. JPEG
        pa.field("uploaded_at", _TS, nullable=False),
        pa.field("schema_version", pa.int32(), nullable=False),
        pa.field("topic", pa.string(), nullable=False),
        pa.field("kafka_partition", pa.int32(), nullable=False),
        pa.field("kafka_offset", pa.int64(), nullable=False),
        pa.field("kafka_timestamp", _TS),  # when the broker appended the message
        pa.field("batch_id", pa.string(), nullable=False),
    ]
)

#: ``raw/dead_letters``: messages that are not valid upload events, kept verbatim with the reason.
DEAD_LETTERS = pa.schema(
    [
        pa.field("topic", pa.string(), nullable=False),
        pa.field("kafka_partition", pa.int32(), nullable=False),
        pa.field("kafka_offset", pa.int64(), nullable=False),
        pa.field("kafka_timestamp", _TS),
        pa.field("message_key", pa.binary()),
        pa.field("message_value", pa.binary()),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("batch_id", pa.string(), nullable=False),
        # The last offset the row stands for: a range of offsets lost from Kafka is one dead letter
        # (kafka_offset..last_offset); equal to kafka_offset otherwise. Null in files older than it.
        pa.field("last_offset", pa.int64()),
    ]
)

#: ``curated/image_metadata``: one row per uploaded image, processed or failed.
#: Columns after ``height`` are filled by the full real-time pipeline; they are
#: null for failed images.
IMAGE_METADATA = pa.schema(
    [
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("client_id", pa.string(), nullable=False),
        pa.field("key", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),  # processed | failed
        pa.field("error", pa.string()),  # why it failed (null when processed)
        pa.field("sha256", pa.string(), nullable=False),  # of the stored bytes
        pa.field("size_bytes", pa.int64(), nullable=False),
        pa.field("format", pa.string()),  # Pillow format name: JPEG, PNG, WEBP, GIF, TIFF
        pa.field("width", pa.int32()),  # as displayed (EXIF orientation applied)
        pa.field("height", pa.int32()),
        pa.field("mode", pa.string()),  # Pillow mode: RGB, RGBA, L, P, CMYK, I;16, ...
        pa.field("bit_depth", pa.int32()),  # bits per channel
        pa.field("frame_count", pa.int32()),  # > 1 for animations
        pa.field("orientation", pa.int32()),  # EXIF orientation 1-8 (1 when absent)
        pa.field("has_icc", pa.bool_()),
        pa.field("has_gps", pa.bool_()),  # a flag only: coordinates are never stored
        pa.field("exif_captured_at", _TS),  # EXIF DateTimeOriginal, if sane
        pa.field("camera_make", pa.string()),
        pa.field("camera_model", pa.string()),
        pa.field("phash", pa.string()),  # 64-bit perceptual hash, 16 hex digits
        pa.field("brightness_mean", pa.float32()),  # 0-255, luma of a reduced image
        pa.field("contrast", pa.float32()),  # standard deviation of luma
        pa.field("colourfulness", pa.float32()),  # Hasler-Suesstrunk metric
        pa.field("duplicate_of", pa.string()),  # the earliest image it duplicates, if any
        pa.field("duplicate_kind", pa.string()),  # exact | near (null when unique)
        pa.field("duplicate_distance", pa.int32()),  # phash Hamming distance (0 for exact)
        pa.field("uploaded_at", _TS, nullable=False),
        pa.field("processed_at", _TS, nullable=False),  # first time this batch was processed
        pa.field("batch_id", pa.string(), nullable=False),
    ]
)

#: ``curated/derivatives``: one row per derivative the batch job wrote (or failed to write).
#: Written by ``spark_jobs/derivatives_spark.py``; ``dt`` is the source image's upload date.
DERIVATIVES = pa.schema(
    [
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("size", pa.int32(), nullable=False),  # longest edge requested, px
        pa.field("format", pa.string(), nullable=False),  # webp | jpeg
        pa.field("key", pa.string()),  # derivatives/<size>/<image_id>.<ext> (null if failed)
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("size_bytes", pa.int64()),
        pa.field("status", pa.string(), nullable=False),  # written | failed
        pa.field("error", pa.string()),
        pa.field("source_sha256", pa.string()),
        pa.field("uploaded_at", _TS, nullable=False),  # of the source image
        pa.field("created_at", _TS, nullable=False),
        pa.field("run_id", pa.string(), nullable=False),  # the job run that wrote it
        # When the derivative was first written, carried over forced re-renders (latency counts from
        # it); null while it never was. Older files lack it: readers fall back to created_at.
        pa.field("first_written_at", _TS),
    ]
)

#: ``curated/storage_inventory``: objects and bytes per zone and upload date, one snapshot a day.
#: Written by the garbage-collection job from the one listing it takes.
STORAGE_INVENTORY = pa.schema(
    [
        pa.field("snapshot_at", _TS, nullable=False),
        pa.field("zone", pa.string(), nullable=False),  # raw | curated | derivatives
        pa.field("prefix", pa.string(), nullable=False),  # e.g. raw/images, curated/image_metadata
        pa.field("data_date", pa.date32()),  # the dt= partition, null where keys carry none
        pa.field("objects", pa.int64(), nullable=False),
        pa.field("bytes", pa.int64(), nullable=False),
    ]
)

#: ``curated/hash_index``: every image a real-time batch has seen, the duplicate index.
#: Written by the batch before it looks for duplicates; one file per batch and upload date, so
#: concurrent batches never write the same object, merged per day by the runs themselves
#: (imagelake/realtime/hash_index.py, docs/design.md). Internal to the real-time path: not in SCHEMAS,
#: which lists the lake's tables for the warehouse.
HASH_INDEX = pa.schema(
    [
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("client_id", pa.string(), nullable=False),
        pa.field("uploaded_at", _TS, nullable=False),
        pa.field("sha256", pa.string()),  # of the stored bytes (null unless the image was processed)
        #: The 64-bit hash the image is matched by (duplicates.match_hash: its perceptual hash,
        #: or for a flat image 64 bits of its sha256) as a signed integer (Glue and Spectrum
        #: have no unsigned 64-bit type); null when the image could not be decoded.
        pa.field("phash", pa.int64()),
        pa.field("batch_id", pa.string(), nullable=False),
    ]
)

SCHEMAS: dict[str, pa.Schema] = {
    "upload_events": UPLOAD_EVENTS,
    "dead_letters": DEAD_LETTERS,
    "image_metadata": IMAGE_METADATA,
    "derivatives": DERIVATIVES,
    "storage_inventory": STORAGE_INVENTORY,
}

#: Columns of ``image_metadata`` filled from :class:`~imagelake.images.facts.ImageFacts` (null when failed);
#: the catalog item carries them as its ``metadata``.
FACT_COLUMNS = (
    "format",
    "width",
    "height",
    "mode",
    "bit_depth",
    "frame_count",
    "orientation",
    "has_icc",
    "has_gps",
    "exif_captured_at",
    "camera_make",
    "camera_model",
    "phash",
    "brightness_mean",
    "contrast",
    "colourfulness",
)
