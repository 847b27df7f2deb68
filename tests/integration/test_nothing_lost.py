"""Nothing accepted is ever lost or counted twice, under the interleavings a review found.

Each test drives a real Kafka broker, DynamoDB Local and the lake through the code the
product runs; each fails without the fix it guards.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import dagster as dg
import pyarrow.parquet as pq
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from imagelake.batch.garbage_collection import GC_PREFIXES, GcPolicy, plan
from imagelake.lake import layout
from imagelake.realtime.kafka import KafkaConnection, consumer_config
from orchestration.resources import KafkaResource
from orchestration.sensors import dump_cursor
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
