"""Today's storage figures from the refresh's listing: the days it rebuilds listed afresh, every other
day carried over from the latest listing, nothing written when nothing changed."""

from datetime import UTC, date, datetime, timedelta

import pyarrow as pa

from imagelake.batch.garbage_collection import inventory_rows
from imagelake.lake import layout
from imagelake.lake.ids import new_image_id
from imagelake.lake.schemas import SCHEMAS
from imagelake.lake.store import Lake
from imagelake.lake.tables import read_table_file, to_parquet_bytes
from imagelake.warehouse.storage_listing import latest_listing, list_storage, listing_key

NOW = datetime.now(UTC).replace(microsecond=0)
TODAY = NOW.date()
YESTERDAY = TODAY - timedelta(days=1)


def image_on(day: date, n: int) -> str:
    moment = datetime.combine(day, datetime.min.time(), UTC) + timedelta(minutes=n)
    return new_image_id(int(moment.timestamp() * 1000), bytes(10))  # the same image again in a later fill


def fill(lake: Lake, day: date, images: int) -> None:
    for n in range(images):
        image_id = image_on(day, n)
        lake.put(layout.raw_image_key(day.isoformat(), image_id), b"x" * 100)
        lake.put(layout.derivative_key(256, image_id, "webp"), b"d" * 10)
    lake.put(layout.batch_file_key("upload_events", day.isoformat(), f"batch-{images}"), b"e" * 50)


def figures(rows) -> dict[tuple, tuple[int, int]]:
    return {(r["zone"], r["prefix"], r["data_date"]): (r["objects"], r["bytes"]) for r in rows}


def test_the_first_listing_lists_the_whole_lake_and_later_ones_only_their_days(lake: Lake):
    fill(lake, YESTERDAY, 3)
    fill(lake, TODAY, 2)
    rows, first = list_storage(lake, [TODAY], NOW, 7)
    assert first.whole_lake and first.written and first.objects_listed == 3 * 2 + 1 + 2 * 2 + 1
    assert figures(rows)[("raw", "raw/images", YESTERDAY)] == (3, 300)
    assert figures(rows)[("derivatives", "derivatives/256", TODAY)] == (2, 20)

    fill(lake, TODAY, 5)  # two images more today (and a second events file)
    later = NOW + timedelta(minutes=1)
    rows, second = list_storage(lake, [TODAY], later, 7)
    assert not second.whole_lake and second.objects_listed == 5 * 2 + 2  # today only
    assert figures(rows)[("raw", "raw/images", TODAY)] == (5, 500)
    assert figures(rows)[("derivatives", "derivatives/256", TODAY)] == (5, 50)
    assert figures(rows)[("raw", "raw/images", YESTERDAY)] == (3, 300)  # carried over, not listed
    assert {r["snapshot_at"] for r in rows} == {later}
    # The listing is the complete picture a whole listing gives.
    everything = [o for prefix in ("raw/", "curated/", "derivatives/") for o in lake.list(prefix)]
    whole = inventory_rows([o for o in everything if o.key != listing_key(TODAY)], set(), later)
    assert figures(rows) == figures(whole)


def test_a_listing_that_finds_nothing_new_writes_nothing_and_ignores_its_own_file(lake: Lake):
    fill(lake, TODAY, 2)
    list_storage(lake, [TODAY], NOW, 7)
    before = lake.head(listing_key(TODAY))
    _, again = list_storage(lake, [TODAY], NOW + timedelta(minutes=1), 7)
    assert not again.written and lake.head(listing_key(TODAY)) == before


def test_a_new_day_gets_its_row_even_when_nothing_changed(lake: Lake):
    fill(lake, YESTERDAY, 2)
    list_storage(lake, [YESTERDAY], NOW - timedelta(days=1), 7)  # yesterday's listing
    rows, today = list_storage(lake, [TODAY], NOW, 7)
    assert today.written and today.objects_listed == 0
    stored = read_table_file(lake, "storage_inventory", listing_key(TODAY)).to_pylist()
    assert figures(stored) == figures(rows) and figures(rows)[("raw", "raw/images", YESTERDAY)] == (2, 200)


def test_garbage_collections_listing_is_the_base_when_it_is_the_newest(lake: Lake):
    fill(lake, TODAY, 1)
    gc_rows = [
        {
            "snapshot_at": NOW,
            "zone": "raw",
            "prefix": "raw/images",
            "data_date": YESTERDAY,
            "objects": 9,
            "bytes": 9,
        }
    ]
    gc_key = layout.batch_file_key("storage_inventory", TODAY.isoformat(), "gc-20260101T000000Z")
    lake.put(gc_key, to_parquet_bytes(pa.Table.from_pylist(gc_rows, schema=SCHEMAS["storage_inventory"])))
    assert figures(latest_listing(lake, TODAY, 7)) == figures(gc_rows)
    rows, result = list_storage(lake, [TODAY], NOW + timedelta(minutes=5), 7)
    assert not result.whole_lake
    assert figures(rows)[("raw", "raw/images", YESTERDAY)] == (9, 9)  # garbage collection's figure
    assert figures(rows)[("raw", "raw/images", TODAY)] == (1, 100)
