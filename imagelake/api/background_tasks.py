"""What a served API does besides answering: follow the statistics snapshots, and read the Kafka
sensor's lag for ``/metrics``. Each runs on a timer in the app's lifespan, its I/O off the event
loop, so a request never waits for the lake or Kafka to answer the statistics or a scrape."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from confluent_kafka import Consumer
from fastapi.concurrency import run_in_threadpool

from imagelake.api.metrics import ApiMetrics
from imagelake.realtime.kafka import (
    SENSOR_GROUP,
    KafkaConnection,
    KafkaUnavailable,
    consumer_config,
    group_lag,
)
from imagelake.stats.snapshot_reader import SnapshotReader

log = logging.getLogger("imagelake.api")

#: How often /metrics' Kafka lag is read: a scrape interval's order, and one request per partition.
KAFKA_LAG_INTERVAL_S = 15.0


def poll_snapshot(reader: SnapshotReader, metrics: ApiMetrics) -> None:
    """One look for a newer statistics snapshot; what it found is logged and counted."""
    outcome = reader.poll()
    for failure in outcome.failures:
        metrics.snapshot_failures.inc()
        log.error(
            "statistics snapshot not loaded, still serving %s: %s",
            reader.answers.generation or "none",
            failure,
        )
    if outcome.loaded is not None:
        metrics.snapshot_loads.inc()
        metrics.snapshot_published.set(outcome.loaded.published_at.timestamp())
        log.info("serving statistics snapshot %s", outcome.loaded.id)


def read_kafka_lag(connection: KafkaConnection, topic: str, metrics: ApiMetrics) -> None:
    consumer = Consumer(consumer_config(connection, SENSOR_GROUP))
    try:
        lag = group_lag(consumer, topic, timeout_s=5.0)
    except KafkaUnavailable as exc:
        log.warning("Kafka consumer lag not known: %s", exc)
        return
    finally:
        consumer.close()
    for partition, events in lag.items():
        metrics.kafka_lag.labels(partition=str(partition)).set(events)


async def every(interval_s: float, work: Callable[[], None]) -> None:
    """Run ``work`` in a worker thread now and then every ``interval_s``, until cancelled; a failure
    is logged and the next round goes ahead."""
    while True:
        try:
            await run_in_threadpool(work)
        except Exception:  # a background round must never end the loop (nor the app)
            log.exception("background task %s failed", getattr(work, "__name__", work))
        await asyncio.sleep(interval_s)


@contextlib.asynccontextmanager
async def running(*tasks: tuple[float, Callable[[], None]]):
    """Run each ``(interval, work)`` in the background for the block, cancelled on exit."""
    started = [asyncio.create_task(every(interval, work)) for interval, work in tasks]
    try:
        yield
    finally:
        for task in started:
            task.cancel()
        await asyncio.gather(*started, return_exceptions=True)
