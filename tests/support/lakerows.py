"""Rows of the lake's tables for seeding a test lake, shaped exactly like the real writers' rows."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from imagelake.batch import garbage_collection
from imagelake.lake import layout
from imagelake.lake.ids import new_image_id
from imagelake.lake.store import Lake
from imagelake.lake.tables import write_batch_table


def image_id_at(moment: datetime, n: int = 0) -> str:
    return new_image_id(int(moment.timestamp() * 1000), n.to_bytes(10, "big"))


def event_row(image_id: str, uploaded_at: datetime, batch_id: str, offset: int, data: bytes = b"x") -> dict:
    return {
        "image_id": image_id,
        "client_id": "dev",
        "key": layout.raw_image_key(layout.dt_of(uploaded_at), image_id),
        "sha256": hashlib.sha256(data).hexdigest(),
        "size_bytes": len(data),
        "format": "JPEG",
        "uploaded_at": uploaded_at,
        "schema_version": 1,
        "topic": batch_id.rsplit("-", 3)[0],
        "kafka_partition": int(batch_id.rsplit("-", 3)[1]),
        "kafka_offset": offset,
        "kafka_timestamp": uploaded_at,
        "batch_id": batch_id,
    }


def metadata_row(
    image_id: str,
    uploaded_at: datetime,
    batch_id: str,
    *,
    width: int = 64,
    height: int = 48,
    status: str = "processed",
    data: bytes = b"x",
    processed_at: datetime | None = None,
) -> dict:
    return {
        "image_id": image_id,
        "client_id": "dev",
        "key": layout.raw_image_key(layout.dt_of(uploaded_at), image_id),
        "status": status,
        "error": None if status == "processed" else "undecodable: test",
        "sha256": hashlib.sha256(data).hexdigest(),
        "size_bytes": len(data),
        "format": "JPEG",
        "width": width,
        "height": height,
        "uploaded_at": uploaded_at,
        "processed_at": processed_at or uploaded_at + timedelta(seconds=2),
        "batch_id": batch_id,
    }


def seed_batch(
    lake: Lake, topic: str, partition: int, first: int, uploads: list[tuple[str, datetime, bytes]]
) -> str:
    """Store images and write their batch's events and metadata like a real-time run does."""
    batch_id = f"{topic}-{partition}-{first}-{first + max(len(uploads), 1) - 1}"
    events, meta = [], []
    for offset, (image_id, moment, data) in enumerate(uploads, start=first):
        lake.put(layout.raw_image_key(layout.dt_of(moment), image_id), data)
        events.append(event_row(image_id, moment, batch_id, offset, data))
        meta.append(metadata_row(image_id, moment, batch_id, data=data))
    dts = [layout.dt_of(r["uploaded_at"]) for r in events]
    write_batch_table(lake, "upload_events", batch_id, events, dts)
    write_batch_table(lake, layout.IMAGE_METADATA, batch_id, meta, dts)
    return batch_id


def seed_gc_lake(lake, now: datetime) -> dict[str, set[str]]:
    """A lake with something of every kind: what must go and what must stay, by reason."""
    old, kept = now - timedelta(days=9), now - timedelta(days=2)
    expected = {
        "expired": set(),
        "expired_dead_letter": set(),
        "failed_upload": set(),
        "orphan": set(),
        "stay": set(),
    }
    old_ids = [(image_id_at(old, i), old, f"old-{i}".encode()) for i in range(3)]
    seed_batch(lake, "t", 0, 0, old_ids)
    expected["expired"] |= {o.key for o in lake.list("raw") if f"dt={layout.dt_of(old)}" in o.key}
    expected["expired"] |= {o.key for o in lake.list("curated") if f"dt={layout.dt_of(old)}" in o.key}
    for image_id, _, _ in old_ids:
        key = layout.derivative_key(256, image_id, "webp")
        lake.put(key, b"d")
        expected["expired"].add(key)
    dead = layout.batch_file_key("dead_letters", layout.dt_of(old), "t-0-0-2")
    write_batch_table(
        lake,
        "dead_letters",
        "t-0-0-2",
        [{"topic": "t", "kafka_partition": 0, "kafka_offset": 1, "reason": "bad", "batch_id": "t-0-0-2"}],
        [layout.dt_of(old)],
    )
    expected["expired_dead_letter"].add(dead)

    kept_ids = [(image_id_at(kept, i), kept, f"kept-{i}".encode()) for i in range(3)]
    seed_batch(lake, "t", 1, 0, kept_ids)
    for image_id, _, _ in kept_ids:
        lake.put(layout.derivative_key(256, image_id, "webp"), b"d")
    never_announced = layout.raw_image_key(layout.dt_of(kept), image_id_at(kept, 50))
    lake.put(never_announced, b"no event")
    expected["failed_upload"].add(never_announced)
    orphan = layout.derivative_key(512, image_id_at(kept, 60), "webp")
    lake.put(orphan, b"source gone")
    expected["orphan"].add(orphan)
    doomed = set().union(*expected.values())
    expected["stay"] = {o.key for z in garbage_collection.GC_PREFIXES for o in lake.list(z)} - doomed
    return expected


def seed_closed_day_with_a_damaged_file(lake, batches: int) -> tuple[datetime, str]:
    """Yesterday: ``batches`` batch files of three images each, and one image_metadata file that
    is not Parquet (what compaction must not hide). Returns the day and the damaged key."""
    day = datetime.now(UTC) - timedelta(days=1)
    for b in range(batches):
        seed_batch(
            lake, "t", b, 0, [(image_id_at(day, b * 10 + i), day, f"{b}-{i}".encode()) for i in range(3)]
        )
    damaged = layout.batch_file_key("image_metadata", layout.dt_of(day), f"t-{batches + 2}-0-0")
    lake.put(damaged, b"not parquet")
    return day, damaged
