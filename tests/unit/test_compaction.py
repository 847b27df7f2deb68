"""Compaction of closed days, and readers that follow the exactly-once rule while it runs."""

import threading
from datetime import UTC, datetime, time, timedelta

import duckdb
import pytest

from imagelake.batch.compaction import compact_day, days_to_compact
from imagelake.lake import layout
from imagelake.lake.read_rule import ROW_IDENTITY, exactly_once_sql
from imagelake.lake.tables import write_batch_table
from tests.support.lakerows import image_id_at, metadata_row, seed_batch

NOW = datetime.now(UTC)
TODAY = NOW.date()
# Early on a closed day, so that a late event hours later still falls on the same day whatever the clock says.
DAY = datetime.combine(TODAY - timedelta(days=2), time(1), UTC)
DT = layout.dt_of(DAY)
TOPIC = "image-uploads"


def seed_day(lake, batches: int = 4, per_batch: int = 5, start: int = 0) -> list[str]:
    ids = []
    for b in range(batches):
        uploads = []
        for i in range(per_batch):
            image_id = image_id_at(DAY + timedelta(minutes=b), start + b * 100 + i)
            uploads.append((image_id, DAY + timedelta(minutes=b, seconds=i), f"img-{image_id}".encode()))
            ids.append(image_id)
        seed_batch(lake, TOPIC, b % 3, start + b * per_batch, uploads)
    return ids


def files(lake, table: str) -> list[str]:
    return sorted(o.key for o in lake.list(layout.day_prefix(table, DT)))


def query(sql: str) -> list[tuple]:
    """One query on its own DuckDB connection (readers run in threads)."""
    with duckdb.connect() as con:
        return con.sql(sql).fetchall()


def read_once(lake, table: str) -> list[tuple]:
    """A reader that follows the rule: every row of the table, exactly once."""
    sql = exactly_once_sql(table, str(lake.root))
    identity = ", ".join(ROW_IDENTITY[table])
    return sorted(query(f"select {identity} from ({sql})"))


def naive_count(lake, table: str) -> int:
    glob = f"{lake.root}/{layout.table_prefix(table)}dt=*/*.parquet"
    return query(f"select count(*) from read_parquet('{glob}')")[0][0]


def test_a_closed_day_becomes_one_verified_file_per_table(lake):
    ids = seed_day(lake)
    before = read_once(lake, "upload_events")
    assert len(files(lake, "upload_events")) == 4 and len(before) == len(ids)

    result = compact_day(lake, "upload_events", DT, target_bytes=1 << 27, today=TODAY)
    assert result.status == "compacted" and result.source_files == 4 and result.rows == len(ids)
    [compacted] = files(lake, "upload_events")
    assert layout.is_compacted_key(compacted) and result.written == [compacted]
    assert sorted(result.deleted) == sorted(k for k in result.deleted if not layout.is_compacted_key(k))
    assert read_once(lake, "upload_events") == before
    assert naive_count(lake, "upload_events") == len(ids)


def test_compacting_again_changes_nothing_and_an_open_day_waits(lake):
    seed_day(lake, batches=2)
    compact_day(lake, "image_metadata", DT, target_bytes=1 << 27, today=TODAY)
    snapshot = {k: lake.get(k) for k in files(lake, "image_metadata")}
    again = compact_day(lake, "image_metadata", DT, target_bytes=1 << 27, today=TODAY)
    assert again.status == "unchanged" and again.deleted == [] and again.written == []
    assert {k: lake.get(k) for k in files(lake, "image_metadata")} == snapshot
    assert (
        compact_day(lake, "image_metadata", layout.dt_of(NOW), target_bytes=1, today=TODAY).status
        == "open_day"
    )


def test_readers_see_every_row_exactly_once_before_during_and_after_the_swap(lake):
    ids = seed_day(lake)
    expected = read_once(lake, "image_metadata")
    seen_mid_swap = {}

    def read_while_both_generations_exist(written: list[str]) -> None:
        keys = files(lake, "image_metadata")
        assert set(written) < set(keys) and len(keys) == 5  # the new file and the four it replaces
        seen_mid_swap["rows"] = read_once(lake, "image_metadata")
        seen_mid_swap["naive"] = naive_count(lake, "image_metadata")

    compact_day(
        lake,
        "image_metadata",
        DT,
        target_bytes=1 << 27,
        today=TODAY,
        after_verify=read_while_both_generations_exist,
    )
    assert seen_mid_swap["rows"] == expected and len(expected) == len(ids)
    assert seen_mid_swap["naive"] == 2 * len(ids)  # what a reader ignoring the rule would count
    assert read_once(lake, "image_metadata") == expected


def test_a_reader_in_a_loop_never_counts_a_row_twice_or_misses_one(lake):
    seed_day(lake, batches=12, per_batch=20)
    expected = read_once(lake, "upload_events")
    results, vanished, stop = [], [], threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                results.append(read_once(lake, "upload_events"))
            except duckdb.IOException as exc:  # a file it globbed was deleted before it opened it
                vanished.append(str(exc))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for round_, part_size in enumerate((1 << 27, 6_000, 1 << 27)):  # one file, several parts, one again
            if round_:
                seed_day(lake, batches=1, per_batch=3, start=5000 + round_ * 10)  # late events
            expected = read_once(lake, "upload_events")
            result = compact_day(lake, "upload_events", DT, target_bytes=part_size, today=TODAY)
            assert result.status == "compacted"
            assert (len(result.written) > 1) == (part_size < 1 << 27)
    finally:
        stop.set()
        thread.join(30)
    assert results, "the reader never completed a read"
    final = read_once(lake, "upload_events")
    assert final == expected
    for rows in results:
        assert len(rows) == len(set(rows)), "a row was counted twice"
        assert set(rows) <= set(final), "a row appeared that does not exist"


def test_a_late_event_for_a_compacted_day_is_folded_in_and_nothing_is_lost(lake):
    ids = seed_day(lake, batches=3)
    compact_day(lake, "upload_events", DT, target_bytes=1 << 27, today=TODAY)
    late_id = image_id_at(DAY + timedelta(hours=3), 999)
    late_batch = seed_batch(lake, TOPIC, 2, 900, [(late_id, DAY + timedelta(hours=3), b"late")])
    assert len(files(lake, "upload_events")) == 2
    assert DT in days_to_compact(lake, "upload_events", today=TODAY, oldest=TODAY - timedelta(days=7))

    with_late = read_once(lake, "upload_events")
    assert len(with_late) == len(ids) + 1
    result = compact_day(lake, "upload_events", DT, target_bytes=1 << 27, today=TODAY)
    assert result.status == "compacted" and result.rows == len(ids) + 1
    assert len(files(lake, "upload_events")) == 1
    assert read_once(lake, "upload_events") == with_late
    rows = query(
        f"select batch_id from read_parquet('{lake.root}/raw/events/dt={DT}/*.parquet') where image_id = '{late_id}'"
    )
    assert rows == [(late_batch,)]


def test_a_batch_rerun_after_compaction_keeps_the_first_result(lake):
    seed_day(lake, batches=2, per_batch=3)
    compact_day(lake, "image_metadata", DT, target_bytes=1 << 27, today=TODAY)
    sql = f"select image_id, processed_at from ({exactly_once_sql('image_metadata', str(lake.root))})"
    before = sorted(query(sql))
    # The real-time batch runs again; its batch file is gone, so it writes fresh processed_at values.
    first_batch = f"{TOPIC}-0-0-2"
    rerun = [
        metadata_row(image_id, DAY, first_batch, processed_at=NOW) for image_id, _ in before[:3] if image_id
    ]
    write_batch_table(lake, "image_metadata", first_batch, rerun, [DT] * len(rerun))
    assert sorted(query(sql)) == before
    compact_day(lake, "image_metadata", DT, target_bytes=1 << 27, today=TODAY)
    assert sorted(query(sql)) == before
    assert naive_count(lake, "image_metadata") == len(before)


@pytest.mark.parametrize("table", ["dead_letters", "derivatives", "storage_inventory"])
def test_tables_without_files_are_left_alone(lake, table):
    assert compact_day(lake, table, DT, target_bytes=1 << 27, today=TODAY).status == "unchanged"
