"""Nothing accepted is ever lost or counted twice, under the interleavings a review found.

Each test drives a real Kafka broker, DynamoDB Local and the lake through the code the
product runs; each fails without the fix it guards.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import boto3
import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from imagelake.batch.compaction import compact_day
from imagelake.batch.garbage_collection import GC_PREFIXES, GcPolicy, plan
from imagelake.lake import layout
from imagelake.lake.read_rule import exactly_once, first_per_image
from imagelake.lake.store import Lake
from imagelake.lake.tables import day_files, read_table_file, rows_to_table, to_parquet_bytes
from imagelake.realtime.kafka import KafkaConnection, consumer_config
from orchestration.resources import KafkaResource
from orchestration.sensors import dump_cursor
from tests.support.lakerows import image_id_at, seed_batch
from tests.support.realtime_runs import run_batch, tick


def short_retention_topic(bootstrap: str, name: str) -> str:
    """A 3-partition topic whose closed segments are deleted a second after they are written."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    config = {"retention.ms": "1000", "segment.ms": "200", "file.delete.delay.ms": "0"}
    admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1, config=config)])[name].result(
        30
    )
    return name


def low_watermark(bootstrap: str, topic: str, partition: int) -> int:
    consumer = Consumer(consumer_config(KafkaConnection(bootstrap)))
    try:
        return consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)[0]
    finally:
        consumer.close()


def test_offsets_expired_by_retention_become_dead_letters_on_todays_date_and_gc_keeps_them(
    stack, kafka_bootstrap: str
):
    lake, _kafka, instance, _producer, catalog = stack
    topic = short_retention_topic(kafka_bootstrap, f"short-retention-{time.time_ns()}")
    kafka = KafkaResource(bootstrap=kafka_bootstrap, topic=topic)
    # The sensor has seen the topic empty: its cursor is at offset 0 of every partition.
    cursor = dump_cursor({0: 0, 1: 0, 2: 0})
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for n in range(5):
        producer.produce(topic, value=f"message {n}".encode(), partition=0)
    producer.flush(10)
    # Nobody reads them; Kafka's retention deletes their segment once a newer one is rolled.
    deadline = time.monotonic() + 60
    while low_watermark(kafka_bootstrap, topic, 0) < 5:
        assert time.monotonic() < deadline, "retention never deleted the first segment"
        producer.produce(topic, value=b"later", partition=0)
        producer.flush(10)
        time.sleep(0.5)
    low = low_watermark(kafka_bootstrap, topic, 0)

    result, _ = tick(instance, kafka, cursor)
    assert isinstance(result, dg.SensorResult)
    expired = [r for r in result.run_requests if "imagelake/expired_offsets" in r.tags]
    assert [r.partition_key for r in expired] == [f"{topic}-0-0-{low - 1}"]

    today = datetime.now(UTC).date().isoformat()
    run_batch(instance, expired[0].partition_key, lake, kafka, catalog)
    key = layout.batch_file_key("dead_letters", today, expired[0].partition_key)
    rows = pq.read_table(lake.root / key).to_pylist()  # type: ignore[operator]
    assert [(r["kafka_offset"], r["last_offset"]) for r in rows] == [(0, low - 1)]
    assert "expired from Kafka" in rows[0]["reason"]

    # Garbage collection keeps it for the retention period, like any dead letter.
    objects = [info for prefix in GC_PREFIXES for info in lake.list(prefix)]
    for days in (0, 6):
        policy = GcPolicy(datetime.now(UTC) + timedelta(days=days), 7, timedelta(hours=24))
        assert key not in {d.key for d in plan(objects, set(), policy)}
    policy = GcPolicy(datetime.now(UTC) + timedelta(days=8), 7, timedelta(hours=24))
    assert key in {d.key for d in plan(objects, set(), policy)}


# -- compaction deletes only what it verified ---------------------------------------------------


@pytest.fixture(params=["local", "s3"])
def any_lake(request, tmp_path, moto_endpoint, monkeypatch):
    """The lake as a folder, and on moto's S3 server (prod's code path: S3's conditional delete)."""
    if request.param == "local":
        return Lake((tmp_path / "lake").as_uri())
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    bucket = f"compaction-{time.time_ns()}"
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return Lake(f"s3://{bucket}/lake", s3_endpoint=moto_endpoint)


class RacingLake(Lake):
    """The lake, with a writer that lands once on ``key`` just before anything deletes it."""

    def __init__(self, lake: Lake, key: str, data: bytes) -> None:
        super().__init__(lake.url, lake.s3_endpoint, lake.region)
        self.race: tuple[str, bytes] | None = (key, data)

    def _land(self, key: str) -> None:
        if self.race is not None and self.race[0] == key:
            self.put(*self.race)
            self.race = None

    def delete(self, key: str) -> None:
        self._land(key)
        super().delete(key)

    def delete_if_unchanged(self, key: str, e_tag: str) -> bool:
        self._land(key)
        return super().delete_if_unchanged(key, e_tag)


def test_a_correction_rewritten_during_compactions_verify_and_delete_survives(any_lake):
    """A late batch's duplicate resolution rewrites a file after compaction verified it, just before
    compaction deletes it: the correction stays, and readers prefer it to the stale compacted copy."""
    day = datetime.now(UTC).replace(hour=1, minute=0, second=0, microsecond=0) - timedelta(days=2)
    dt = layout.dt_of(day)
    first, copy = image_id_at(day, 0), image_id_at(day + timedelta(minutes=2), 2)
    seed_batch(any_lake, "image-uploads", 0, 0, [(first, day, b"same bytes")])
    copy_batch = seed_batch(
        any_lake, "image-uploads", 1, 0, [(copy, day + timedelta(minutes=2), b"same bytes")]
    )
    copy_key = layout.batch_file_key(layout.IMAGE_METADATA, dt, copy_batch)
    rows = read_table_file(any_lake, layout.IMAGE_METADATA, copy_key).to_pylist()
    rows[0].update(duplicate_of=first, duplicate_kind="exact", duplicate_distance=0)
    corrected = to_parquet_bytes(rows_to_table(layout.IMAGE_METADATA, rows))
    lake = RacingLake(any_lake, copy_key, corrected)

    result = compact_day(
        lake, layout.IMAGE_METADATA, dt, target_bytes=1 << 27, today=day.date() + timedelta(days=2)
    )
    assert lake.race is None, "the writer landed"
    assert result.kept == [copy_key] and copy_key not in result.deleted
    assert lake.get(copy_key) == corrected
    # Readers following the rule see the correction beside the stale compacted copy.
    files = day_files(lake, layout.IMAGE_METADATA, dt)
    table = pa.concat_tables([read_table_file(lake, layout.IMAGE_METADATA, f.key) for f in files])
    winner = first_per_image(exactly_once(table, layout.IMAGE_METADATA).to_pylist())[copy]
    assert winner["duplicate_of"] == first
    # The next compaction folds it in.
    again = compact_day(
        lake, layout.IMAGE_METADATA, dt, target_bytes=1 << 27, today=day.date() + timedelta(days=2)
    )
    assert copy_key in again.deleted


def test_a_conditional_delete_leaves_an_object_that_changed(any_lake):
    lake = any_lake
    lake.put("curated/x/dt=2026-11-20/a.parquet", b"first")
    _, tag = lake.get_tagged("curated/x/dt=2026-11-20/a.parquet")
    lake.put("curated/x/dt=2026-11-20/a.parquet", b"secnd")  # same size, same second
    assert lake.delete_if_unchanged("curated/x/dt=2026-11-20/a.parquet", tag) is False
    assert lake.get("curated/x/dt=2026-11-20/a.parquet") == b"secnd"
    _, tag = lake.get_tagged("curated/x/dt=2026-11-20/a.parquet")
    assert lake.delete_if_unchanged("curated/x/dt=2026-11-20/a.parquet", tag) is True
    assert not lake.exists("curated/x/dt=2026-11-20/a.parquet")
    assert lake.delete_if_unchanged("curated/x/dt=2026-11-20/a.parquet", tag) is True  # gone already
    assert [o.key for o in lake.list("curated/x")] == []  # nothing left aside
