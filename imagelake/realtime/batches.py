"""A real-time batch: from Kafka messages to archived events, dead letters and metadata.

These are the pure steps the Dagster run wraps. Every output is a function of
the batch's messages and the stored images, except ``processed_at``, which is
the first time the batch was processed: a re-run reads it back from the
previous output so it rewrites identical files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa

from imagelake.images.checks import ImageRejected
from imagelake.images.facts import ImageFacts, describe
from imagelake.images.phash import to_hex
from imagelake.lake import layout
from imagelake.lake.layout import BatchId
from imagelake.lake.schemas import FACT_COLUMNS
from imagelake.lake.store import ObjectMissing
from imagelake.realtime.events import EventDecodeError, UploadEvent, decode_event
from imagelake.realtime.kafka import Message

MISSING_FROM_KAFKA = "offset expired from Kafka before the batch ran"
REFUSED_UPLOAD = (
    "the upload API refused this upload (Kafka did not acknowledge its event in time) and told the "
    "client so; the event reached Kafka after all and is not processed"
)


@dataclass(frozen=True)
class SplitBatch:
    """A batch's messages sorted into valid events and dead letters (rows + their dt)."""

    events: list[UploadEvent]
    event_rows: list[dict]
    event_dts: list[str]
    dead_rows: list[dict]
    dead_dts: list[str]


def split_messages(
    batch: BatchId,
    messages: list[Message],
    missing: Iterable[tuple[int, int]],
    detected_on: str,
    refused: frozenset[str] = frozenset(),
) -> SplitBatch:
    """Decode each message; anything that is not a valid event becomes a dead letter with its reason.

    Offsets gone from Kafka (``missing``, as ranges) become one dead letter per range; the event
    of an upload the API ``refused`` (its catalog item says so) becomes a dead letter too. A dead letter
    lives under the day Kafka received its message; one without a timestamp (an expired offset)
    under the batch's earliest message's day, else ``detected_on`` (the day the loss was found), so
    it is kept for the retention period from then like any dead letter.
    """
    stamps = [m.timestamp for m in messages if m.timestamp is not None]
    fallback_dt = layout.dt_of(min(stamps)) if stamps else detected_on
    events: list[UploadEvent] = []
    event_rows: list[dict] = []
    event_dts: list[str] = []
    dead_rows: list[dict] = []
    dead_dts: list[str] = []

    def dead(
        offset: int,
        ts: datetime | None,
        key: bytes | None,
        value: bytes | None,
        reason: str,
        last_offset: int | None = None,
    ) -> None:
        dead_rows.append(
            {
                "topic": batch.topic,
                "kafka_partition": batch.partition,
                "kafka_offset": offset,
                "kafka_timestamp": ts,
                "message_key": key,
                "message_value": value,
                "reason": reason,
                "batch_id": str(batch),
                "last_offset": offset if last_offset is None else last_offset,
            }
        )
        dead_dts.append(layout.dt_of(ts) if ts else fallback_dt)

    for msg in messages:
        try:
            event = decode_event(msg.value)
        except EventDecodeError as exc:
            dead(msg.offset, msg.timestamp, msg.key, msg.value, exc.reason)
            continue
        if event.image_id in refused:
            dead(msg.offset, msg.timestamp, msg.key, msg.value, REFUSED_UPLOAD)
            continue
        events.append(event)
        event_rows.append(
            {
                "image_id": event.image_id,
                "client_id": event.client_id,
                "key": event.key,
                "sha256": event.sha256,
                "size_bytes": event.size_bytes,
                "format": event.format,
                "uploaded_at": event.uploaded_at,
                "schema_version": event.schema_version,
                "topic": msg.topic,
                "kafka_partition": msg.partition,
                "kafka_offset": msg.offset,
                "kafka_timestamp": msg.timestamp,
                "batch_id": str(batch),
            }
        )
        event_dts.append(event.dt)
    for first, last in missing:
        dead(first, None, None, None, f"{MISSING_FROM_KAFKA}: offsets {first}-{last}", last_offset=last)
    return SplitBatch(events, event_rows, event_dts, dead_rows, dead_dts)


def events_from_table(table: pa.Table) -> list[UploadEvent]:
    """Upload events back from an archived ``raw/events`` batch table."""
    return [
        UploadEvent(
            image_id=r["image_id"],
            client_id=r["client_id"],
            key=r["key"],
            sha256=r["sha256"],
            size_bytes=r["size_bytes"],
            format=r["format"],
            uploaded_at=r["uploaded_at"],
            schema_version=r["schema_version"],
        )
        for r in table.to_pylist()
    ]


def unique_events(events: Iterable[UploadEvent]) -> list[UploadEvent]:
    """One event per image: a message delivered twice is processed once (first offset wins)."""
    seen: dict[str, UploadEvent] = {}
    for event in events:
        seen.setdefault(event.image_id, event)
    return list(seen.values())


#: Why a row failed when its raw object is not in the lake.
MISSING = "missing: the raw object does not exist (never stored, or deleted before its batch ran)"


def fact_values(facts: ImageFacts) -> dict:
    """The ``image_metadata`` columns of one image's facts."""
    return {
        "format": facts.format,
        "width": facts.width,
        "height": facts.height,
        "mode": facts.mode,
        "bit_depth": facts.bit_depth,
        "frame_count": facts.frame_count,
        "orientation": facts.orientation,
        "has_icc": facts.has_icc,
        "has_gps": facts.has_gps,
        "exif_captured_at": facts.captured_at,
        "camera_make": facts.camera_make,
        "camera_model": facts.camera_model,
        "phash": to_hex(facts.phash),
        "brightness_mean": facts.brightness_mean,
        "contrast": facts.contrast,
        "colourfulness": facts.colourfulness,
    }


def metadata_row(
    event: UploadEvent, data: bytes | None, processed_at: datetime, batch_id: str, max_pixels: int
) -> dict:
    """The curated metadata row of one image: ``processed``, or ``failed`` with the reason.

    Duplicate columns are left empty here: they depend on other images and
    are filled by :mod:`imagelake.realtime.duplicate_resolution`.
    """
    row = {
        "image_id": event.image_id,
        "client_id": event.client_id,
        "key": event.key,
        "status": "processed",
        "error": None,
        "sha256": event.sha256,
        "size_bytes": event.size_bytes,
        **dict.fromkeys(FACT_COLUMNS),
        "duplicate_of": None,
        "duplicate_kind": None,
        "duplicate_distance": None,
        "uploaded_at": event.uploaded_at,
        "processed_at": processed_at,
        "batch_id": batch_id,
    }
    if data is None:
        return {**row, "status": "failed", "error": MISSING}
    digest = hashlib.sha256(data).hexdigest()
    row["sha256"], row["size_bytes"] = digest, len(data)
    if digest != event.sha256:
        return {
            **row,
            "status": "failed",
            "error": f"sha256 mismatch: the stored bytes are not the upload the event announced ({event.sha256})",
        }
    try:
        facts = describe(data, max_pixels=max_pixels, uploaded_at=event.uploaded_at)
    except ImageRejected as exc:
        return {**row, "status": "failed", "error": f"undecodable: {exc.reason}"}
    return {**row, **fact_values(facts)}


def build_metadata_rows(
    events: list[UploadEvent],
    fetch: Callable[[str], bytes],
    processed_at: Callable[[str], datetime],
    batch_id: str,
    max_pixels: int,
    workers: int = 4,
) -> list[dict]:
    """Metadata rows for a batch, fetching and inspecting images in parallel threads."""

    def one(event: UploadEvent) -> dict:
        try:
            data: bytes | None = fetch(event.key)
        except ObjectMissing:
            data = None
        return metadata_row(event, data, processed_at(event.image_id), batch_id, max_pixels)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, events))
