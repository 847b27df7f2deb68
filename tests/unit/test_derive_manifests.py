"""The derivatives manifest: a forced re-render replaces a row but keeps when the derivative first existed."""

from datetime import UTC, datetime, timedelta

from imagelake.batch.compaction import compact_day
from imagelake.batch.day_derivatives import SourceImage, _failed, _row, read_day, write_manifests
from imagelake.lake import layout

UPLOADED = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
DT = layout.dt_of(UPLOADED)
IMAGE = SourceImage("01KAG0000000000000000000AA", "raw/images/x", "ab" * 32, 64, 48, UPLOADED, "t-0-0-3")
OTHER = SourceImage("01KAG0000000000000000000BB", "raw/images/y", "cd" * 32, 64, 48, UPLOADED, "t-1-0-3")


def write(lake, row: dict) -> None:
    batch_of = {i.image_id: i.batch_id for i in (IMAGE, OTHER)}
    _, after = write_manifests(lake, DT, [row], batch_of, read_day(lake, "derivatives", DT))
    assert after.equals(read_day(lake, "derivatives", DT))  # the day as the totals see it, unread


def stored(lake) -> dict:
    [row] = [r for r in read_day(lake, "derivatives", DT).to_pylist() if r["image_id"] == IMAGE.image_id]
    return row


def test_a_re_render_keeps_the_first_write_merged_compacted_or_failed(lake):
    first = UPLOADED + timedelta(minutes=1)
    write(lake, _row(IMAGE, 256, "webp", first, "run-1", size_bytes=100))
    write(lake, _row(OTHER, 256, "webp", first, "run-1", size_bytes=100))  # a second file to compact
    assert stored(lake)["first_written_at"] == first

    write(lake, _row(IMAGE, 256, "webp", first + timedelta(hours=1), "run-2", size_bytes=101))
    row = stored(lake)  # merged into the same batch file: the first row is gone, its moment is not
    assert (row["size_bytes"], row["run_id"], row["first_written_at"]) == (101, "run-2", first)

    today = UPLOADED.date() + timedelta(days=2)
    assert compact_day(lake, "derivatives", DT, target_bytes=1 << 27, today=today).status == "compacted"
    write(lake, _row(IMAGE, 256, "webp", first + timedelta(hours=2), "run-3", size_bytes=102))
    assert stored(lake)["first_written_at"] == first  # beside the compacted file, then compacted
    compact_day(lake, "derivatives", DT, target_bytes=1 << 27, today=today)
    assert (stored(lake)["run_id"], stored(lake)["first_written_at"]) == ("run-3", first)

    write(lake, _failed(IMAGE, 256, "webp", first + timedelta(hours=3), "run-4", "undecodable: x"))
    row = stored(lake)  # a failed re-render: the derivative still first existed then
    assert (row["status"], row["first_written_at"]) == ("failed", first)


def test_a_derivative_that_never_was_written_has_no_first_write_until_it_is(lake):
    failed_at = UPLOADED + timedelta(minutes=1)
    write(lake, _failed(IMAGE, 512, "webp", failed_at, "run-1", "undecodable: x"))
    assert stored(lake)["first_written_at"] is None
    written_at = failed_at + timedelta(hours=1)
    write(lake, _row(IMAGE, 512, "webp", written_at, "run-2", size_bytes=100))
    assert stored(lake)["first_written_at"] == written_at
