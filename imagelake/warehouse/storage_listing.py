"""Today's storage figures between two garbage collections: the warehouse refresh lists the days it
rebuilds, and carries every other day over from the latest listing.

``storage_inventory`` used to be written only by garbage collection (nightly), so after uploads
``marts.storage_usage_daily`` had no row for today until the next night, and none at all on a new
install. Listing the whole lake at every refresh would cost a LIST request per thousand objects
of every retained day; but a day's objects change only when something writes that day's data,
and every such writer (the real-time batches, derivatives, compaction) makes the refresh sensor
rebuild exactly that day. So a refresh lists the days of its window and takes every other data
date from the latest listing in the lake (garbage collection's, or an earlier refresh's): the
result is a complete inventory, as garbage collection writes it, and ``stg_storage_inventory``
reads it the same way (a day's latest listing). With no listing in the lake yet, the first one
lists every zone whole.

The listing is written once per day as ``curated/storage_inventory/dt=<today>/refresh-listing.parquet``
(each refresh replaces it) and only when it differs from the latest listing or that one is of an
earlier day, so refreshes that find nothing new write nothing. Its own file is left out of what it
counts, or each listing would differ from the last by itself.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock

import pyarrow as pa

from imagelake.batch.garbage_collection import GC_PREFIXES, inventory_rows
from imagelake.lake import layout
from imagelake.lake.ids import new_image_id
from imagelake.lake.schemas import SCHEMAS
from imagelake.lake.store import Lake, ObjectInfo
from imagelake.lake.tables import day_files, read_table_file, to_parquet_bytes

TABLE = "storage_inventory"
#: What a row is about; a listing's rows are compared on these and the figures, not the time.
ROW_KEY = ("zone", "prefix", "data_date")


@dataclass(frozen=True)
class ListingResult:
    """What one refresh's listing did, for the run's metadata."""

    written: bool
    days_listed: list[date]
    objects_listed: int
    rows: int
    whole_lake: bool
    seconds: float
    key: str


def listing_key(day: date) -> str:
    return layout.batch_file_key(TABLE, day.isoformat(), layout.STORAGE_LISTING_ID)


def latest_listing(lake: Lake, today: date, retention_days: int) -> list[dict]:
    """The rows of the newest listing in the lake (garbage collection's or a refresh's), looking back
    one retention period; empty if there is none."""
    newest: list[dict] = []
    for back in range(retention_days + 2):
        day = (today - timedelta(days=back)).isoformat()
        tables = [read_table_file(lake, TABLE, info.key) for info in day_files(lake, TABLE, day)]
        rows = [row for table in tables for row in table.to_pylist()]
        if rows:
            newest_at = max(row["snapshot_at"] for row in rows)
            newest = _distinct(row for row in rows if row["snapshot_at"] == newest_at)
            break
    return newest


def _distinct(rows: Iterable[dict]) -> list[dict]:
    """One row per zone, prefix and date (a listing read twice through compaction counts once)."""
    return list({tuple(row[c] for c in ROW_KEY): row for row in rows}.values())


def day_objects(lake: Lake, day: date) -> Iterator[ObjectInfo]:
    """Every object whose data date is ``day``: the ``dt=`` folders of the dated prefixes, and the
    derivatives whose image id falls on that day (listed from the day's first possible id)."""
    dt = day.isoformat()
    yield from lake.list(layout.raw_images_prefix(dt))
    for table in layout.TABLE_PREFIXES:
        yield from lake.list(layout.day_prefix(table, dt))
    yield from lake.list(f"{layout.HASH_INDEX_PREFIX}dt={dt}/")
    start = datetime.combine(day, clock(), tzinfo=UTC)
    first_id = new_image_id(int(start.timestamp() * 1000), bytes(10))
    next_id = new_image_id(int((start + timedelta(days=1)).timestamp() * 1000), bytes(10))
    for folder in lake.list_dirs(layout.derivative_sizes_prefix()):
        first, end = f"{folder}{first_id}", f"{folder}{next_id}"
        # S3 starts at ``first``; a local folder lists everything, so both ends are checked here.
        for info in lake.list_from(folder, first):
            if first <= info.key < end:
                yield info


def list_storage(
    lake: Lake, days: Iterable[date], now: datetime, retention_days: int
) -> tuple[list[dict], ListingResult]:
    """The complete inventory as of ``now``: ``days`` listed afresh, other dates carried over."""
    started = time.perf_counter()
    today = now.astimezone(UTC).date()
    own_key = listing_key(today)
    base = latest_listing(lake, today, retention_days)
    listed_days = sorted(set(days))
    if base:
        objects = [o for day in listed_days for o in day_objects(lake, day) if o.key != own_key]
        fresh = inventory_rows(objects, set(), now)
        relisted = set(listed_days)
        carried = [{**row, "snapshot_at": now} for row in base if row["data_date"] not in relisted]
        rows = sorted(carried + fresh, key=lambda r: (r["zone"], r["prefix"], r["data_date"] or date.min))
    else:
        objects = [o for prefix in GC_PREFIXES for o in lake.list(prefix) if o.key != own_key]
        rows = inventory_rows(objects, set(), now)
    unchanged = bool(base) and _figures(base) == _figures(rows)
    same_day = bool(base) and base[0]["snapshot_at"].astimezone(UTC).date() == today
    write = not (unchanged and same_day)
    if write:
        lake.put(own_key, to_parquet_bytes(pa.Table.from_pylist(rows, schema=SCHEMAS[TABLE])))
    return rows, ListingResult(
        written=write,
        days_listed=listed_days,
        objects_listed=len(objects),
        rows=len(rows),
        whole_lake=not base,
        seconds=time.perf_counter() - started,
        key=own_key,
    )


def _figures(rows: Iterable[dict]) -> set[tuple]:
    return {(r["zone"], r["prefix"], r["data_date"], r["objects"], r["bytes"]) for r in rows}
