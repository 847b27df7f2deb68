"""Garbage-collection planning over a seeded snapshot: what goes, why, and what must stay."""

from datetime import UTC, datetime, timedelta

import pytest

from imagelake.batch import garbage_collection
from imagelake.lake import layout
from imagelake.lake.store import ObjectInfo
from tests.support.lakerows import image_id_at

NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
POLICY = garbage_collection.GcPolicy(NOW, retention_days=7, grace=timedelta(hours=24))


def obj(key: str, age: timedelta, size: int = 100) -> ObjectInfo:
    return ObjectInfo(key, size, NOW - age)


def raw(moment: datetime, n: int, age: timedelta | None = None) -> ObjectInfo:
    image_id = image_id_at(moment, n)
    return obj(layout.raw_image_key(layout.dt_of(moment), image_id), age or NOW - moment)


def derivative(of: ObjectInfo, size: int = 256, age: timedelta | None = None) -> ObjectInfo:
    image_id = of.key.rsplit("/", 1)[-1]
    return obj(layout.derivative_key(size, image_id, "webp"), age or NOW - of.last_modified)


def test_the_cutoff_is_the_retention_setting():
    assert POLICY.cutoff.isoformat() == "2026-03-13"
    assert garbage_collection.GcPolicy(NOW, 3, timedelta(hours=1)).cutoff.isoformat() == "2026-03-17"
    with pytest.raises(ValueError, match="grace"):
        garbage_collection.GcPolicy(NOW, 1, timedelta(days=2))
    with pytest.raises(ValueError, match="timezone"):
        garbage_collection.GcPolicy(datetime(2026, 3, 20), 7, timedelta(hours=1))


def test_plan_deletes_exactly_what_is_expired_or_orphaned():
    old_day, kept_day, last_kept = (
        NOW - timedelta(days=9),
        NOW - timedelta(days=3),
        datetime(2026, 3, 13, 0, 1, tzinfo=UTC),
    )
    expired_raw = raw(old_day, 1)
    boundary_raw = raw(last_kept, 2)  # the oldest day still kept
    announced = raw(kept_day, 3)
    unannounced = raw(kept_day, 4)
    young_unannounced = raw(NOW - timedelta(hours=2), 5)
    objects = [
        expired_raw,
        boundary_raw,
        announced,
        unannounced,
        young_unannounced,
        derivative(expired_raw),  # expired with its source (upload date inside the image id)
        derivative(announced),
        derivative(announced, 512),
        obj(layout.derivative_key(256, image_id_at(kept_day, 6), "webp"), timedelta(days=2)),  # source gone
        obj(layout.derivative_key(256, image_id_at(NOW, 7), "webp"), timedelta(minutes=5)),  # young orphan
        obj(layout.batch_file_key("upload_events", layout.dt_of(old_day), "t-0-0-9"), timedelta(days=9)),
        obj(layout.batch_file_key("upload_events", layout.dt_of(kept_day), "t-0-10-19"), timedelta(days=3)),
        obj(layout.batch_file_key("dead_letters", layout.dt_of(old_day), "t-0-0-9"), timedelta(days=9)),
        obj(layout.batch_file_key("dead_letters", layout.dt_of(kept_day), "t-0-10-19"), timedelta(days=3)),
        obj(layout.compacted_file_key("image_metadata", layout.dt_of(old_day), "abc", 0), timedelta(days=1)),
        obj("curated/notes/readme.txt", timedelta(days=8)),  # no date in the key: its write time counts
    ]
    ids = lambda infos: {i.key.rsplit("/", 1)[-1] for i in infos}  # noqa: E731
    candidates = garbage_collection.failed_upload_candidates(objects, POLICY)
    assert candidates == ids([boundary_raw, announced, unannounced])
    doomed = garbage_collection.plan(objects, ids([unannounced]), POLICY)
    reasons = {d.key: d.reason for d in doomed}
    assert reasons == {
        expired_raw.key: garbage_collection.EXPIRED,
        objects[5].key: garbage_collection.EXPIRED,
        unannounced.key: garbage_collection.FAILED_UPLOAD,
        objects[8].key: garbage_collection.ORPHAN_DERIVATIVE,
        objects[10].key: garbage_collection.EXPIRED,
        objects[12].key: garbage_collection.EXPIRED_DEAD_LETTER,
        objects[14].key: garbage_collection.EXPIRED,
        objects[15].key: garbage_collection.EXPIRED,
    }
    summary = garbage_collection.summarize(doomed)
    assert summary[garbage_collection.EXPIRED] == {"objects": 5, "bytes": 500}
    assert (
        summary[garbage_collection.FAILED_UPLOAD]["objects"]
        == summary[garbage_collection.ORPHAN_DERIVATIVE]["objects"]
        == 1
    )


def test_nothing_young_goes_even_if_unreferenced():
    fresh = [
        raw(NOW - timedelta(hours=1), 1),
        obj(layout.derivative_key(256, image_id_at(NOW, 2), "webp"), timedelta(0)),
    ]
    unannounced = {fresh[0].key.rsplit("/", 1)[-1]}
    assert garbage_collection.plan(fresh, unannounced, POLICY) == []


def test_inventory_counts_what_remains_per_zone_prefix_and_date():
    day = NOW - timedelta(days=2)
    source = raw(day, 1)
    objects = [
        source,
        raw(day, 2),
        derivative(source),
        obj(layout.batch_file_key("upload_events", layout.dt_of(day), "t-0-0-1"), timedelta(days=2), 50),
        obj(layout.batch_file_key("upload_events", layout.dt_of(day), "t-0-2-3"), timedelta(days=2), 70),
    ]
    rows = garbage_collection.inventory_rows(objects, {objects[1].key}, NOW)
    assert [(r["zone"], r["prefix"], r["data_date"], r["objects"], r["bytes"]) for r in rows] == [
        ("derivatives", "derivatives/256", day.date(), 1, 100),
        ("raw", "raw/events", day.date(), 2, 120),
        ("raw", "raw/images", day.date(), 1, 100),
    ]
    assert {r["snapshot_at"] for r in rows} == {NOW}


def test_the_policy_reads_as_people_write_durations_in_the_log():
    assert POLICY.describe() == "retention 7 days (cutoff 2026-03-13), grace 24 h"
    short = garbage_collection.GcPolicy(NOW, retention_days=7, grace=timedelta(seconds=1))
    assert short.describe().endswith("grace 1 s") and "day," not in short.describe()
