import hashlib
from datetime import UTC, datetime

from imagelake.lake.layout import BatchId
from imagelake.lake.store import ObjectMissing
from imagelake.realtime.batches import (
    MISSING_FROM_KAFKA,
    build_metadata_rows,
    metadata_row,
    split_messages,
    unique_events,
)
from imagelake.realtime.kafka import Message
from tests.support import sample_images as images
from tests.unit.test_events import make_event

BATCH = BatchId("image-uploads", 1, 10, 14)
TS = datetime(2026, 11, 24, 10, 0, 1, tzinfo=UTC)
NOW = datetime(2026, 11, 24, 10, 0, 5, tzinfo=UTC)


def msg(offset: int, value: bytes | None) -> Message:
    return Message("image-uploads", 1, offset, TS, b"k", value)


def test_split_sorts_events_from_dead_letters_with_reasons():
    event = make_event()
    split = split_messages(
        BATCH, [msg(10, event.encode()), msg(11, b"garbage"), msg(12, None)], [(13, 14)], "2026-12-01"
    )
    assert [e.image_id for e in split.events] == [event.image_id]
    assert split.event_rows[0]["kafka_offset"] == 10 and split.event_rows[0]["batch_id"] == str(BATCH)
    assert split.event_dts == ["2026-11-24"]
    assert [(r["kafka_offset"], r["last_offset"]) for r in split.dead_rows] == [(11, 11), (12, 12), (13, 14)]
    reasons = [r["reason"] for r in split.dead_rows]
    assert reasons[0].startswith("invalid upload event") and reasons[1] == "empty message"
    assert reasons[2] == f"{MISSING_FROM_KAFKA}: offsets 13-14"
    assert split.dead_rows[0]["message_value"] == b"garbage"
    assert split.dead_dts == ["2026-11-24"] * 3  # the batch's messages' day


def test_a_batch_whose_offsets_all_expired_files_its_dead_letter_under_the_day_it_was_found():
    split = split_messages(BatchId("image-uploads", 1, 0, 999), [], [(0, 999)], "2026-12-01")
    assert split.events == [] and len(split.dead_rows) == 1
    assert (split.dead_rows[0]["kafka_offset"], split.dead_rows[0]["last_offset"]) == (0, 999)
    assert split.dead_dts == ["2026-12-01"]  # not 1970-01-01: kept for the retention period from today


def test_a_redelivered_event_is_processed_once():
    event = make_event()
    assert unique_events([event, event]) == [event]


def test_metadata_row_outcomes():
    data = images.jpeg(40, 30)
    event = make_event(sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data))
    ok = metadata_row(event, data, NOW, str(BATCH), 10**8)
    assert (ok["status"], ok["format"], ok["width"], ok["height"], ok["error"]) == (
        "processed",
        "JPEG",
        40,
        30,
        None,
    )
    missing = metadata_row(event, None, NOW, str(BATCH), 10**8)
    assert missing["status"] == "failed" and missing["error"].startswith("missing")
    corrupt = data[: len(data) // 2]
    bad = metadata_row(
        make_event(sha256=hashlib.sha256(corrupt).hexdigest(), size_bytes=len(corrupt)),
        corrupt,
        NOW,
        "b",
        10**8,
    )
    assert bad["status"] == "failed" and bad["error"].startswith("undecodable")
    tampered = metadata_row(event, images.jpeg(40, 30, seed=9), NOW, "b", 10**8)
    assert tampered["status"] == "failed" and "sha256 mismatch" in tampered["error"]


def test_build_rows_keeps_going_past_failures():
    data = images.png(20, 10)
    good = make_event(sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data))
    gone = make_event(image_id="01" + "A" * 24, key="raw/images/dt=2026-11-24/01" + "A" * 24)

    def fetch(key: str) -> bytes:
        if key == good.key:
            return data
        raise ObjectMissing(key)

    rows = build_metadata_rows([good, gone], fetch, lambda _: NOW, "b", 10**8)
    assert [r["status"] for r in rows] == ["processed", "failed"]


def test_a_batch_logs_one_line_naming_at_most_twenty_images():
    """Each log line is an event in the instance's database: one per batch, not one per image."""
    from assets.curated import LOGGED_IMAGES, listed

    names = [f"img{i}" for i in range(LOGGED_IMAGES + 5)]
    line = listed(names)
    assert line.count("img") == LOGGED_IMAGES and line.endswith("img19 and 5 more")
    assert listed(names[:2]) == "img0, img1"
