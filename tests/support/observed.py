"""What the services hold after a test: raw objects in the lake, catalog items, messages on Kafka."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, TopicPartition

from imagelake.catalog import Catalog
from imagelake.lake.store import Lake
from imagelake.realtime.kafka import KafkaConnection, KafkaUnavailable, consumer_config, fetch_watermarks


def watermarks(consumer: Consumer, topic: str) -> dict[int, tuple[int, int]]:
    """Offsets of a topic created moments ago: its partitions may take a moment to have leaders."""
    deadline = time.monotonic() + 20
    while True:
        try:
            marks = fetch_watermarks(consumer, topic, timeout_s=10)
            if len(marks) == 3:
                return marks
        except KafkaUnavailable:
            if time.monotonic() > deadline:
                raise
        assert time.monotonic() < deadline, f"topic {topic} never showed its 3 partitions"
        time.sleep(0.2)


def all_messages(bootstrap: str, topic: str) -> list[bytes]:
    consumer = Consumer(consumer_config(KafkaConnection(bootstrap)))
    try:
        values = []
        marks = watermarks(consumer, topic)
        for partition in range(3):
            low, high = marks[partition]
            if high == low:
                continue
            consumer.assign([TopicPartition(topic, partition, low)])
            while len(values) < sum(1 for _ in values) + (high - low):
                msg = consumer.poll(5)
                assert msg is not None, "expected message not delivered"
                if msg.error():
                    continue
                values.append(msg.value())
                if msg.offset() >= high - 1:
                    break
        return values
    finally:
        consumer.close()


def raw_objects(lake: Lake) -> list[str]:
    return [o.key for o in lake.list("raw/images")]


def catalog_items(catalog: Catalog) -> list[dict]:
    return catalog._client.scan(TableName=catalog.table, ConsistentRead=True)["Items"]
