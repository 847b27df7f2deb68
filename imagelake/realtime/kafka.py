"""Kafka plumbing: client configs, the upload topic, offsets and reading a batch.

The Dagster sensor is the only consumer of the upload topic. It does not read
through consumer-group commits: its cursor holds the next offset per partition, and a
batch is an inclusive offset range that a run reads back with ``assign``. It does
commit its stored cursor to the group :data:`SENSOR_GROUP`, for monitoring only, so
that its lag is where every Kafka tool looks for a consumer's lag (``group_lag``).
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from imagelake.lake.layout import BatchId
from imagelake.settings import Settings

_CLIENT_LOG = logging.getLogger("imagelake.realtime.kafka.client")


class KafkaUnavailable(RuntimeError):
    """Kafka could not be reached or did not answer in time."""


def msk_iam_token(region: str, _oauthbearer_config: str = "") -> tuple[str, float]:
    """A signed MSK IAM auth token and its expiry (epoch seconds), for librdkafka's ``oauth_cb``.

    Credentials come from the default AWS chain (EKS Pod Identity in prod).
    """
    from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

    token, expiry_ms = MSKAuthTokenProvider.generate_auth_token(region)
    return token, expiry_ms / 1000


@dataclass(frozen=True)
class KafkaConnection:
    """Where the brokers are and how to talk to them (``auth="msk-iam"`` on Amazon MSK)."""

    bootstrap: str
    extra: Mapping[str, str] = field(default_factory=dict)
    auth: str = "none"
    region: str = "us-east-1"

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaConnection:
        return cls(
            settings.kafka_bootstrap, dict(settings.kafka_extra), settings.kafka_auth, settings.aws_region
        )

    def client_config(self) -> dict[str, Any]:
        # librdkafka's own log lines go through Python logging, not straight to stderr.
        config: dict[str, Any] = {"bootstrap.servers": self.bootstrap, "logger": _CLIENT_LOG}
        if self.auth == "msk-iam":
            config["security.protocol"] = "SASL_SSL"
            config["sasl.mechanism"] = "OAUTHBEARER"
            config["oauth_cb"] = functools.partial(msk_iam_token, self.region)
        return {**config, **self.extra}


def producer_config(conn: KafkaConnection, delivery_timeout_s: float) -> dict[str, object]:
    """An idempotent producer: acks from all in-sync replicas, no duplicates on retry."""
    timeout_ms = int(delivery_timeout_s * 1000)
    return {
        **conn.client_config(),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "message.timeout.ms": timeout_ms,
        "socket.connection.setup.timeout.ms": max(1000, timeout_ms),
        "reconnect.backoff.max.ms": 1000,
    }


def consumer_config(conn: KafkaConnection, group: str = "imagelake-readers") -> dict[str, object]:
    """A consumer for assign/seek reads: nothing is committed to its group unless asked
    (:func:`commit_cursor`); librdkafka requires a ``group.id`` either way."""
    return {
        **conn.client_config(),
        "group.id": group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        "socket.connection.setup.timeout.ms": 3000,
        "reconnect.backoff.max.ms": 1000,
    }


#: The consumer group whose committed offsets are the Kafka sensor's cursor: written by the sensor
#: (:func:`commit_cursor`) and read for the lag (:func:`group_lag`), never to decide what to read.
SENSOR_GROUP = "imagelake-upload-sensor"


def commit_cursor(consumer: Consumer, topic: str, cursor: Mapping[int, int], timeout_s: float) -> None:
    """Commit ``cursor`` as the offsets of the consumer's group (its ``group.id``)."""
    if not cursor:
        return
    offsets = [TopicPartition(topic, partition, offset) for partition, offset in sorted(cursor.items())]
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
            return
        except KafkaException as exc:
            # The group's coordinator may be moving or loading (NOT_COORDINATOR on a new broker's
            # first commit): retriable for a moment, then the caller is told.
            if not exc.args[0].retriable() or time.monotonic() > deadline:
                raise KafkaUnavailable(f"cannot commit the sensor's cursor to {topic}: {exc}") from exc
            time.sleep(0.2)


def group_lag(consumer: Consumer, topic: str, timeout_s: float) -> dict[int, int]:
    """Events per partition past the offsets the consumer's group committed (a partition it never
    committed counts from its earliest offset, as the sensor starts there)."""
    marks = fetch_watermarks(consumer, topic, timeout_s)
    try:
        committed = consumer.committed([TopicPartition(topic, p) for p in marks], timeout=timeout_s)
    except KafkaException as exc:
        raise KafkaUnavailable(f"cannot read the committed offsets of {topic}: {exc}") from exc
    cursor = {tp.partition: tp.offset for tp in committed if tp.offset >= 0}
    return {p: max(0, high - cursor.get(p, low)) for p, (low, high) in marks.items()}


def ensure_topic(conn: KafkaConnection, topic: str, partitions: int, timeout_s: float = 30.0) -> None:
    """Create a topic if it does not exist (idempotent; local stack and tests)."""
    admin = AdminClient(conn.client_config())
    try:
        existing = admin.list_topics(timeout=timeout_s).topics
    except KafkaException as exc:
        raise KafkaUnavailable(f"cannot list topics at {conn.bootstrap}: {exc}") from exc
    if topic in existing:
        return
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)],
        operation_timeout=timeout_s,
    )
    try:
        futures[topic].result(timeout=timeout_s)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise


def fetch_watermarks(consumer: Consumer, topic: str, timeout_s: float) -> dict[int, tuple[int, int]]:
    """``{partition: (low, high)}`` for every partition of ``topic``; ``high`` is the next offset."""
    deadline = time.monotonic() + timeout_s
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s)
    except KafkaException as exc:
        raise KafkaUnavailable(f"cannot fetch metadata of topic {topic!r}: {exc}") from exc
    info = metadata.topics.get(topic)
    if info is None or info.error is not None or not info.partitions:
        reason = info.error if info is not None and info.error is not None else "no partitions"
        raise KafkaUnavailable(f"topic {topic!r} is not available: {reason}")
    marks: dict[int, tuple[int, int]] = {}
    for partition in sorted(info.partitions):
        remaining = max(0.5, deadline - time.monotonic())
        try:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=remaining, cached=False
            )
        except KafkaException as exc:
            raise KafkaUnavailable(f"cannot fetch offsets of {topic}[{partition}]: {exc}") from exc
        marks[partition] = (low, high)
    return marks


@dataclass(frozen=True)
class BatchPlan:
    """What one sensor tick decided: the batches to run and the cursor after them."""

    batches: list[BatchId]
    cursor: dict[int, int]
    #: Offsets that expired from Kafka before anyone read them, one range per partition: each is run
    #: as a batch of its own, which records it as a dead letter (nothing is read).
    expired: list[BatchId] = field(default_factory=list)


def plan_batches(
    topic: str,
    cursor: Mapping[int, int],
    watermarks: Mapping[int, tuple[int, int]],
    batch_size: int,
    max_batches: int,
    slots: Mapping[int, int] | None = None,
) -> BatchPlan:
    """Cut the unread offsets of each partition into batches of at most ``batch_size``.

    Partitions are served round-robin so a busy one cannot starve the others
    when ``max_batches`` caps the tick. A partition with no cursor starts at
    its earliest offset: nothing already in the topic is lost. ``slots`` caps the
    batches of each partition it names (0: none this time, its cursor stays): a
    partition whose batches are still running waits, and its events join a later,
    larger batch.
    """
    nxt: dict[int, int] = {}
    expired: list[BatchId] = []
    for partition, (low, _high) in sorted(watermarks.items()):
        start = cursor.get(partition, low)
        if start < low:
            expired.append(BatchId(topic, partition, start, low - 1))
            start = low
        nxt[partition] = start
    batches: list[BatchId] = []
    left = {p: (slots.get(p, max_batches) if slots is not None else max_batches) for p in watermarks}
    progressed = True
    while progressed and len(batches) < max_batches:
        progressed = False
        for partition in sorted(watermarks):
            high = watermarks[partition][1]
            start = nxt[partition]
            if start >= high or len(batches) >= max_batches or left[partition] <= 0:
                continue
            last = min(start + batch_size, high) - 1
            batches.append(BatchId(topic, partition, start, last))
            nxt[partition] = last + 1
            left[partition] -= 1
            progressed = True
    cursor_out = {int(p): int(o) for p, o in cursor.items()}
    cursor_out.update(nxt)
    return BatchPlan(batches=batches, cursor=cursor_out, expired=expired)


def cap_slots(
    slots: Mapping[int, int],
    cursor: Mapping[int, int],
    watermarks: Mapping[int, tuple[int, int]],
    free: int | None,
) -> dict[int, int]:
    """``slots`` (batches each partition may start) limited to ``free`` batches in all (None: no
    limit), given to the partitions with the most unread events first (ties: the lower partition).
    A partition served drops to few unread events, so the others come next."""
    if free is None:
        return dict(slots)
    waiting = {p: high - cursor.get(p, low) for p, (low, high) in watermarks.items()}
    out = dict.fromkeys(slots, 0)
    left = max(0, free)
    ready = [p for p, n in slots.items() if n > 0 and waiting.get(p, 0) > 0]
    for partition in sorted(ready, key=lambda p: (-waiting[p], p)):
        if left == 0:
            break
        out[partition] = min(slots[partition], left)
        left -= out[partition]
    return out


def parse_cursor(raw: str | None) -> dict[int, int]:
    """The Kafka sensor's cursor, ``{"<partition>": <next offset>}`` as JSON; an unreadable cursor
    is an error, not a reset."""
    if not raw:
        return {}
    try:
        data = json.loads(raw)
        return {int(p): int(o) for p, o in data.items()}
    except (ValueError, AttributeError, TypeError) as exc:
        raise ValueError(
            f"kafka_upload_sensor cursor {raw!r} is not JSON of partition -> next offset; "
            "fix or clear it in the UI (Sensors -> kafka_upload_sensor -> cursor)"
        ) from exc


def dump_cursor(cursor: Mapping[int, int]) -> str:
    return json.dumps({str(p): o for p, o in sorted(cursor.items())}, separators=(",", ":"))


def consumer_lag(cursor: Mapping[int, int], watermarks: Mapping[int, tuple[int, int]]) -> int:
    """Events past a cursor: the end offsets minus the next offsets to read (a partition the
    cursor does not know starts at its earliest offset)."""
    return sum(max(0, high - cursor.get(partition, low)) for partition, (low, high) in watermarks.items())


@dataclass(frozen=True)
class Message:
    """One record of a batch, as read from Kafka."""

    topic: str
    partition: int
    offset: int
    timestamp: datetime | None
    key: bytes | None
    value: bytes | None


def _timestamp(msg) -> datetime | None:
    kind, ms = msg.timestamp()
    if kind == 0 or ms is None or ms < 0:  # TIMESTAMP_NOT_AVAILABLE
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def missing_ranges(first: int, last: int, present: Iterable[int]) -> list[tuple[int, int]]:
    """The gaps of ``first..last`` that ``present`` does not cover, as (first, last) ranges."""
    gaps, expected = [], first
    for offset in sorted(o for o in present if first <= o <= last):
        if offset > expected:
            gaps.append((expected, offset - 1))
        expected = offset + 1
    if expected <= last:
        gaps.append((expected, last))
    return gaps


def read_batch(
    consumer: Consumer, batch: BatchId, timeout_s: float
) -> tuple[list[Message], list[tuple[int, int]]]:
    """Read exactly the offsets of ``batch``.

    Returns the messages and the ranges of offsets that are gone from the log
    (expired by Kafka's retention before the batch ran: below the partition's
    first offset, or a gap in it). Raises :class:`KafkaUnavailable` if the range
    cannot be read within the timeout, so a run fails loudly instead of
    archiving half a batch.
    """
    partition = TopicPartition(batch.topic, batch.partition)
    try:
        low, _high = consumer.get_watermark_offsets(partition, timeout=timeout_s, cached=False)
    except KafkaException as exc:
        raise KafkaUnavailable(f"cannot fetch offsets of {batch.topic}[{batch.partition}]: {exc}") from exc
    messages: dict[int, Message] = {}
    if low > batch.last:  # every offset expired: nothing to read
        return [], missing_ranges(batch.first, batch.last, ())
    consumer.assign([TopicPartition(batch.topic, batch.partition, max(batch.first, low))])
    deadline = time.monotonic() + timeout_s
    position = max(batch.first, low)
    try:
        while position <= batch.last:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise KafkaUnavailable(
                    f"read {len(messages)} of {batch.size} messages of batch {batch} "
                    f"before the {timeout_s:.0f}s timeout; stopped at offset {position}"
                )
            msg = consumer.poll(min(remaining, 1.0))
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    # The log ends before the batch does (truncated): report the rest missing.
                    end = msg.offset()  # an EOF event carries the log-end offset
                    if end is not None and end <= position:
                        break
                    continue
                if err.retriable() or err.code() in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN):
                    continue
                raise KafkaUnavailable(f"reading batch {batch}: {err}")
            offset = msg.offset()
            if offset is None or offset < batch.first:
                continue
            if offset > batch.last:
                break
            messages[offset] = Message(
                batch.topic, batch.partition, offset, _timestamp(msg), msg.key(), msg.value()
            )
            position = offset + 1
    finally:
        consumer.unassign()
    return [messages[o] for o in sorted(messages)], missing_ranges(batch.first, batch.last, messages)
