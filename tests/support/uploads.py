"""Putting events on a topic the way producers do: valid ones and garbage."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from confluent_kafka import Producer

from imagelake.lake import layout
from imagelake.lake.ids import new_image_id
from imagelake.lake.store import Lake
from imagelake.realtime.events import UploadEvent
from imagelake.realtime.kafka import KafkaConnection, producer_config


def producer(bootstrap: str) -> Producer:
    return Producer(producer_config(KafkaConnection(bootstrap), 10))


def store_and_announce(
    lake: Lake | None,
    prod: Producer,
    topic: str,
    data: bytes,
    *,
    fmt: str = "JPEG",
    client_id: str = "dev",
    uploaded_at: datetime | None = None,
    partition: int | None = None,
) -> UploadEvent:
    """What the API does for one upload (lake=None: announce an object that was never stored)."""
    uploaded_at = uploaded_at or datetime.now(UTC)
    image_id = new_image_id(int(uploaded_at.timestamp() * 1000))
    key = layout.raw_image_key(layout.dt_of(uploaded_at), image_id)
    if lake is not None:
        lake.put(key, data, create_only=True)
    event = UploadEvent(
        image_id=image_id,
        client_id=client_id,
        key=key,
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        format=fmt,
        uploaded_at=uploaded_at,
    )
    send(prod, topic, event.encode(), key=image_id, partition=partition)
    return event


def send(
    prod: Producer, topic: str, value: bytes | None, key: str = "k", partition: int | None = None
) -> None:
    kwargs = {} if partition is None else {"partition": partition}
    prod.produce(topic, value=value, key=key.encode(), **kwargs)
    assert prod.flush(10) == 0, "message not delivered"
