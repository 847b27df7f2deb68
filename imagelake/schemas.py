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
    ]
)

#: ``curated/image_metadata``: one row per uploaded image, processed or failed.
IMAGE_METADATA = pa.schema(
    [
        pa.field("image_id", pa.string(), nullable=False),
        pa.field("client_id", pa.string(), nullable=False),
        pa.field("key", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),  # processed | failed
        pa.field("error", pa.string()),  # why it failed (null when processed)
        pa.field("sha256", pa.string(), nullable=False),  # of the stored bytes
        pa.field("size_bytes", pa.int64(), nullable=False),
        pa.field("format", pa.string()),
        pa.field("width", pa.int32()),  # as displayed (EXIF orientation applied)
        pa.field("height", pa.int32()),
        pa.field("uploaded_at", _TS, nullable=False),
        pa.field("processed_at", _TS, nullable=False),  # first time this batch was processed
        pa.field("batch_id", pa.string(), nullable=False),
    ]
)

SCHEMAS: dict[str, pa.Schema] = {
    "upload_events": UPLOAD_EVENTS,
    "dead_letters": DEAD_LETTERS,
    "image_metadata": IMAGE_METADATA,
}
