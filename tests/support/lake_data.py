"""Deterministic curated lake data for warehouse tests and the marts benchmark.

Every table is built with the schemas of :mod:`imagelake.lake.schemas` and written
where :mod:`imagelake.lake.layout` says, batch file by batch file, so dbt reads it
exactly as it reads what the real-time and batch jobs write. Every value is a
function of the day and the seed; numpy keeps a 150,000-image day to about a
second. The generated day carries the awkward cases the marts must survive:
redelivered events (the same event in two batches), images processed twice,
derivatives written twice (a forced re-run), failed images, exact and near
duplicates, and dead letters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from imagelake.batch import garbage_collection
from imagelake.lake import layout
from imagelake.lake.schemas import SCHEMAS
from imagelake.lake.store import Lake
from imagelake.lake.tables import to_parquet_bytes
from imagelake.settings import UPLOADS_TOPIC

_CROCKFORD = np.frombuffer(b"0123456789ABCDEFGHJKMNPQRSTVWXYZ", dtype=np.uint8)
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
FORMATS = np.array(["JPEG", "PNG", "WEBP", "GIF", "TIFF"])
FORMAT_SHARES = np.array([0.70, 0.15, 0.10, 0.03, 0.02])
DERIVATIVE_SIZES = (256, 512, 1024)
PARTITIONS = 3


@dataclass(frozen=True)
class DayShape:
    """How one generated day looks; the defaults are a plausible busy day."""

    images: int
    seed: int = 0
    clients: int = 200
    batch_size: int = 5000
    redelivered_share: float = 0.005
    failed_share: float = 0.015
    exact_duplicate_share: float = 0.02
    near_duplicate_share: float = 0.01
    dead_letter_share: float = 0.001
    derivative_rerun_share: float = 0.01
    derivative_sizes: tuple[int, ...] = DERIVATIVE_SIZES
    #: Extra nullable columns appended to every image_metadata file (a schema change upstream).
    extra_metadata_columns: dict[str, pa.DataType] = field(default_factory=dict)


def _ulids(ms: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """ULIDs (48-bit ms + 80 random bits, Crockford base32), vectorised."""
    n = len(ms)
    high = (ms.astype(np.uint64) << np.uint64(16)) | rng.integers(0, 1 << 16, n, dtype=np.uint64)
    low = rng.integers(0, np.iinfo(np.uint64).max, n, dtype=np.uint64, endpoint=True)
    chars = np.empty((n, 26), dtype=np.uint8)
    for i, shift in enumerate(range(125, -1, -5)):
        if shift >= 64:
            digit = high >> np.uint64(shift - 64)
        elif shift + 5 <= 64:
            digit = low >> np.uint64(shift)
        else:
            digit = (low >> np.uint64(shift)) | (high << np.uint64(64 - shift))
        chars[:, i] = _CROCKFORD[(digit & np.uint64(31)).astype(np.intp)]
    return chars.view("S26").ravel().astype(str)


def _hex(rng: np.random.Generator, n: int, nbytes: int) -> np.ndarray:
    raw = rng.integers(0, 256, (n, nbytes), dtype=np.uint8)
    chars = np.empty((n, nbytes * 2), dtype=np.uint8)
    chars[:, 0::2] = _HEX[raw >> 4]
    chars[:, 1::2] = _HEX[raw & 15]
    return chars.view(f"S{nbytes * 2}").ravel().astype(str)


def _timestamps(seconds: np.ndarray) -> pa.Array:
    return pa.array((seconds * 1_000_000).astype(np.int64), type=pa.timestamp("us", tz="UTC"))


@dataclass
class GeneratedDay:
    """The tables of one generated day, as Arrow tables in the lake's schemas."""

    day: date
    tables: dict[str, list[tuple[str, pa.Table]]]

    def rows(self, table: str) -> pa.Table:
        parts = [t for _, t in self.tables.get(table, [])]
        return pa.concat_tables(parts, promote_options="default") if parts else SCHEMAS[table].empty_table()


def generate_day(day: date, shape: DayShape) -> GeneratedDay:
    """All curated tables of one upload day; nothing is written yet."""
    rng = np.random.default_rng([shape.seed, day.toordinal()])
    n = shape.images
    start = datetime.combine(day, time(), UTC).timestamp()
    offsets = np.sort(rng.uniform(0, 86_400 - 1, n))
    uploaded = start + np.floor(offsets * 1000) / 1000
    image_ids = _ulids((uploaded * 1000).astype(np.int64), rng)
    weights = 1.0 / np.arange(1, shape.clients + 1)
    clients = np.char.add(
        "client-", np.char.zfill(rng.choice(shape.clients, n, p=weights / weights.sum()).astype(str), 3)
    )
    formats = FORMATS[rng.choice(len(FORMATS), n, p=FORMAT_SHARES)]
    size_bytes = np.clip(rng.lognormal(12.5, 1.2, n), 1_000, 25 * 1024 * 1024).astype(np.int64)
    sha = _hex(rng, n, 32)
    dt = day.isoformat()
    keys = np.char.add(f"{layout.RAW_IMAGES}/dt={dt}/", image_ids)

    # Exact duplicates carry an earlier image's bytes; near duplicates only look alike.
    kind = np.full(n, None, dtype=object)
    duplicate_of = np.full(n, None, dtype=object)
    distance = np.full(n, None, dtype=object)
    draw = rng.uniform(size=n)
    exact = (draw < shape.exact_duplicate_share) & (np.arange(n) > 0)
    near = (draw >= shape.exact_duplicate_share) & (
        draw < shape.exact_duplicate_share + shape.near_duplicate_share
    )
    near &= np.arange(n) > 0
    originals = (rng.uniform(size=n) * np.arange(n)).astype(np.int64)
    sha[exact] = sha[originals[exact]]
    size_bytes[exact] = size_bytes[originals[exact]]
    kind[exact], kind[near] = "exact", "near"
    duplicate_of[exact | near] = image_ids[originals[exact | near]]
    distance[exact] = 0
    distance[near] = rng.integers(1, 9, near.sum())

    # Kafka: key = image_id, so an image sticks to one partition; offsets count up per partition.
    partition = rng.integers(0, PARTITIONS, n).astype(np.int32)
    offset = np.zeros(n, dtype=np.int64)
    base = shape.seed * 10_000_000 + (day.toordinal() % 1000) * 1_000_000
    for p in range(PARTITIONS):
        members = partition == p
        offset[members] = base + np.arange(members.sum())
    kafka_ts = uploaded + rng.uniform(0.001, 0.05, n)
    redelivered = rng.uniform(size=n) < shape.redelivered_share

    failed = rng.uniform(size=n) < shape.failed_share
    processed_at = uploaded + rng.lognormal(1.0, 0.8, n) + 0.5
    width = rng.integers(64, 6000, n).astype(np.int32)
    height = rng.integers(64, 4000, n).astype(np.int32)

    events = {
        "image_id": image_ids,
        "client_id": clients,
        "key": keys,
        "sha256": sha,
        "size_bytes": size_bytes,
        "format": formats,
        "uploaded_at": uploaded,
        "schema_version": np.ones(n, dtype=np.int32),
        "topic": np.full(n, UPLOADS_TOPIC),
        "kafka_partition": partition,
        "kafka_offset": offset,
        "kafka_timestamp": kafka_ts,
    }
    outcome = {
        "failed": failed,
        "processed_at": processed_at,
        "width": width,
        "height": height,
        "format": formats,
        "duplicate_of": duplicate_of,
        "duplicate_kind": kind,
        "duplicate_distance": distance,
    }
    tables: dict[str, list[tuple[str, pa.Table]]] = {name: [] for name in SCHEMAS}

    def add_batch(p: int, first: int, idx: np.ndarray, delivered: dict, delay_s: float) -> None:
        """One Kafka batch: its events, and the metadata rows its run wrote ``delay_s`` later."""
        bid = str(layout.BatchId(UPLOADS_TOPIC, p, first, first + len(idx) - 1))
        tables["upload_events"].append((bid, _events_table(delivered, idx, bid)))
        tables["image_metadata"].append((bid, _metadata_table(events, outcome, idx, bid, delay_s, shape)))

    for p in range(PARTITIONS):
        idx = np.flatnonzero(partition == p)
        for chunk in np.array_split(idx, max(1, -(-len(idx) // shape.batch_size))):
            if len(chunk):
                add_batch(p, int(offset[chunk[0]]), chunk, events, 0.0)
        # At-least-once: some events come again in a later batch (new offsets, same event).
        again = np.flatnonzero((partition == p) & redelivered)
        if len(again):
            first = base + 900_000
            replay = dict(events, kafka_offset=offset.copy(), kafka_timestamp=kafka_ts + 30)
            replay["kafka_offset"][again] = first + np.arange(len(again))
            add_batch(p, first, again, replay, 30.0)

    ok = np.flatnonzero(~failed)
    tables["derivatives"] = _derivatives(rng, ok, image_ids, sha, uploaded, width, height, shape, day)
    dead = max(0, round(n * shape.dead_letter_share))
    if dead:
        tables["dead_letters"].append(_dead_letters(rng, dead, start, base, day))
    return GeneratedDay(day, tables)


def _events_table(events: dict, idx: np.ndarray, bid: str) -> pa.Table:
    columns = {name: values[idx] for name, values in events.items()}
    columns["uploaded_at"] = _timestamps(columns["uploaded_at"])
    columns["kafka_timestamp"] = _timestamps(columns["kafka_timestamp"])
    columns["batch_id"] = np.full(len(idx), bid)
    return pa.table(columns).cast(SCHEMAS["upload_events"])


def _metadata_table(
    events: dict, outcome: dict, idx: np.ndarray, bid: str, delay_s: float, shape: DayShape
) -> pa.Table:
    k = len(idx)
    bad = outcome["failed"][idx]

    def unless_failed(values: np.ndarray) -> pa.Array:
        return pa.array(np.where(bad, None, values[idx]).tolist())

    columns = {
        "image_id": events["image_id"][idx],
        "client_id": events["client_id"][idx],
        "key": events["key"][idx],
        "status": np.where(bad, "failed", "processed"),
        "error": pa.array(np.where(bad, "undecodable: image file is truncated", None).tolist()),
        "sha256": events["sha256"][idx],
        "size_bytes": events["size_bytes"][idx],
        **{name: unless_failed(outcome[name]) for name in ("format", "width", "height")},
        "phash": pa.array(np.where(bad, None, events["sha256"][idx].astype("U16")).tolist()),
        **{
            name: unless_failed(outcome[name])
            for name in ("duplicate_of", "duplicate_kind", "duplicate_distance")
        },
        "uploaded_at": _timestamps(events["uploaded_at"][idx]),
        "processed_at": _timestamps(outcome["processed_at"][idx] + delay_s),
        "batch_id": np.full(k, bid),
    }
    schema = SCHEMAS["image_metadata"]
    arrays = [
        pa.array(columns[f.name], type=f.type) if f.name in columns else pa.nulls(k, f.type) for f in schema
    ]
    table = pa.Table.from_arrays(arrays, schema=schema)
    for name, data_type in shape.extra_metadata_columns.items():
        table = table.append_column(pa.field(name, data_type), pa.nulls(k, data_type))
    return table


def _derivatives(rng, ok, image_ids, sha, uploaded, width, height, shape: DayShape, day: date):
    sizes = np.array(shape.derivative_sizes, dtype=np.int32)
    per = len(sizes)
    idx = np.repeat(ok, per)
    size = np.tile(sizes, len(ok))
    created = np.repeat(uploaded[ok] + rng.uniform(300, 3600, len(ok)), per) + np.tile(
        np.arange(per) * 0.01, len(ok)
    )
    scale = np.minimum(1.0, size / np.maximum(width[idx], height[idx]))
    failed = rng.uniform(size=len(idx)) < 0.002
    bytes_ = (size.astype(np.int64) ** 2 // 12) + rng.integers(0, 2000, len(idx))
    dkeys = np.char.add(
        np.char.add(np.char.add(f"{layout.DERIVATIVES}/", size.astype(str)), "/"),
        np.char.add(image_ids[idx], ".webp"),
    )
    run = f"derivatives-{day.isoformat()}-{shape.seed}"
    cols = {
        "image_id": image_ids[idx],
        "size": size,
        "format": np.full(len(idx), "webp"),
        "key": pa.array(np.where(failed, None, dkeys).tolist(), type=pa.string()),
        "width": pa.array(
            np.where(failed, None, (width[idx] * scale).astype(np.int32)).tolist(), type=pa.int32()
        ),
        "height": pa.array(
            np.where(failed, None, (height[idx] * scale).astype(np.int32)).tolist(), type=pa.int32()
        ),
        "size_bytes": pa.array(np.where(failed, None, bytes_).tolist(), type=pa.int64()),
        "status": np.where(failed, "failed", "written"),
        "error": pa.array(
            np.where(failed, "encode failed: broken data stream", None).tolist(), type=pa.string()
        ),
        "source_sha256": sha[idx],
        "uploaded_at": _timestamps(uploaded[idx]),
        "created_at": _timestamps(created),
        "run_id": np.full(len(idx), run),
        "first_written_at": pc.if_else(pa.array(failed), None, _timestamps(created)),
    }
    table = pa.table(cols).cast(SCHEMAS["derivatives"])
    files = [(run, table)]
    # A forced re-run rewrote some derivatives later: the latest row per (image, size, format) wins,
    # and carries the first write (first_written_at) as the job does.
    again = np.flatnonzero(rng.uniform(size=len(idx)) < shape.derivative_rerun_share)
    if len(again):
        rerun = table.take(pa.array(again))
        later = pa.array(
            (created[again] * 1_000_000 + 600_000_000).astype(np.int64), type=pa.timestamp("us", tz="UTC")
        )
        rerun = rerun.set_column(rerun.schema.get_field_index("created_at"), "created_at", later)
        rerun = rerun.set_column(
            rerun.schema.get_field_index("run_id"), "run_id", pa.array([f"{run}-forced"] * len(again))
        )
        files.append((f"{run}-forced", rerun.cast(SCHEMAS["derivatives"])))
    return files


def _dead_letters(rng, count: int, start: float, base: int, day: date) -> tuple[str, pa.Table]:
    stamps = start + np.sort(rng.uniform(0, 86_399, count))
    first = base + 950_000
    bid = str(layout.BatchId(UPLOADS_TOPIC, 0, first, first + count - 1))
    table = pa.table(
        {
            "topic": np.full(count, UPLOADS_TOPIC),
            "kafka_partition": np.zeros(count, dtype=np.int32),
            "kafka_offset": first + np.arange(count),
            "kafka_timestamp": _timestamps(stamps),
            "message_key": [b"k"] * count,
            "message_value": [b"\x00junk"] * count,
            "reason": ["invalid upload event: not JSON"] * count,
            "batch_id": [bid] * count,
            "last_offset": first + np.arange(count),
        }
    ).cast(SCHEMAS["dead_letters"])
    return (bid, table)


def inventory_snapshot(snapshot_at: datetime, days: list[GeneratedDay]) -> pa.Table:
    """What the garbage collector's listing would record for the generated days."""
    rows = []
    for g in days:
        events = g.rows("upload_events")
        raw = {}
        for image_id, size in zip(
            events["image_id"].to_pylist(), events["size_bytes"].to_pylist(), strict=True
        ):
            raw[image_id] = size
        rows.append(("raw", layout.RAW_IMAGES, g.day, len(raw), sum(raw.values())))
        for table, prefix in (
            ("upload_events", layout.RAW_EVENTS),
            ("image_metadata", "curated/image_metadata"),
        ):
            parts = g.tables[table]
            rows.append(
                (
                    "raw" if prefix.startswith("raw") else "curated",
                    prefix,
                    g.day,
                    len(parts),
                    sum(len(to_parquet_bytes(t)) for _, t in parts),
                )
            )
        d = g.rows("derivatives")
        written = d.filter(pa.compute.equal(d["status"], "written"))
        keys = dict(zip(written["key"].to_pylist(), written["size_bytes"].to_pylist(), strict=True))
        rows.append(("derivatives", layout.DERIVATIVES, g.day, len(keys), sum(keys.values())))
    schema = SCHEMAS["storage_inventory"]
    return pa.table(
        {
            "snapshot_at": [snapshot_at] * len(rows),
            "zone": [r[0] for r in rows],
            "prefix": [r[1] for r in rows],
            "data_date": [r[2] for r in rows],
            "objects": [r[3] for r in rows],
            "bytes": [r[4] for r in rows],
        }
    ).cast(schema)


def write_day(lake: Lake, generated: GeneratedDay) -> int:
    """Write a generated day's files where the jobs would; returns the number of files."""
    dt = generated.day.isoformat()
    count = 0
    for table, parts in generated.tables.items():
        for name, data in parts:
            lake.put(layout.batch_file_key(table, dt, name), to_parquet_bytes(data))
            count += 1
    return count


def write_inventory(lake: Lake, snapshot_at: datetime, days: list[GeneratedDay]) -> None:
    table = inventory_snapshot(snapshot_at, days)
    name = f"inventory-{snapshot_at:%Y%m%dT%H%M%S}"
    lake.put(
        layout.batch_file_key("storage_inventory", layout.dt_of(snapshot_at), name), to_parquet_bytes(table)
    )


def days_back(today: date, count: int) -> list[date]:
    """The ``count`` days ending today, oldest first."""
    return [today - timedelta(days=count - 1 - i) for i in range(count)]


def derivatives_for(metadata: pa.Table, run_id: str, sizes: tuple[int, ...] = DERIVATIVE_SIZES) -> pa.Table:
    """Derivative rows for the processed images of a metadata table, as the Spark job records them
    (until that job lands, tests stand in for it with these rows)."""
    rows = []
    for r in metadata.to_pylist():
        if r["status"] != "processed":
            continue
        for i, size in enumerate(sizes):
            scale = min(1.0, size / max(r["width"], r["height"]))
            rows.append(
                {
                    "image_id": r["image_id"],
                    "size": size,
                    "format": "webp",
                    "key": layout.derivative_key(size, r["image_id"], "webp"),
                    "width": int(r["width"] * scale),
                    "height": int(r["height"] * scale),
                    "size_bytes": 100 + size + i,
                    "status": "written",
                    "error": None,
                    "source_sha256": r["sha256"],
                    "uploaded_at": r["uploaded_at"],
                    "created_at": r["processed_at"] + timedelta(seconds=60 + 7 * i),
                    "run_id": run_id,
                    "first_written_at": r["processed_at"] + timedelta(seconds=60 + 7 * i),
                }
            )
    return pa.Table.from_pylist(rows, schema=SCHEMAS["derivatives"])


def listing_inventory(lake: Lake, snapshot_at: datetime) -> pa.Table:
    """The storage inventory of one listing of the whole lake, as the garbage collector records it."""
    objects = [obj for zone in layout.ZONES for obj in lake.list(zone)]
    return pa.Table.from_pylist(
        garbage_collection.inventory_rows(objects, set(), snapshot_at), schema=SCHEMAS["storage_inventory"]
    )
