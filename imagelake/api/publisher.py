"""Publishing upload events with an idempotent producer, awaiting each delivery.

librdkafka delivers on its own thread; a small poll thread hands each delivery
report back to the event loop, so a request waits for its own acknowledgement
(or the delivery timeout) without blocking the server.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from confluent_kafka import KafkaError, Producer

log = logging.getLogger(__name__)


class PublishError(RuntimeError):
    """The event was not acknowledged by Kafka in time."""


class EventPublisher:
    def __init__(self, config: dict[str, object], topic: str, timeout_s: float) -> None:
        self._config = config
        self.topic = topic
        self.timeout_s = timeout_s
        self._producer = Producer(config)
        #: Set once librdkafka reports a fatal error: the process should be restarted.
        self.fatal_error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll_loop, name="kafka-delivery", daemon=True)
        self._thread.start()

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)

    async def publish(self, key: str, value: bytes) -> tuple[int, int]:
        """Produce and wait for the broker's acknowledgement; returns (partition, offset)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[int, int]] = loop.create_future()

        def settle(err: KafkaError | None, msg) -> None:
            if future.done():
                return
            if err is not None:
                future.set_exception(PublishError(f"Kafka did not acknowledge the event: {err.str()}"))
            else:
                future.set_result((msg.partition(), msg.offset()))

        def on_delivery(err: KafkaError | None, msg) -> None:
            if err is not None and err.fatal():
                self.fatal_error = err.str()
                log.error("fatal Kafka producer error (health check now fails): %s", err)
            loop.call_soon_threadsafe(settle, err, msg)

        try:
            self._producer.produce(self.topic, value=value, key=key.encode(), on_delivery=on_delivery)
        except BufferError as exc:
            raise PublishError("the producer queue is full; Kafka is not keeping up") from exc
        try:
            return await asyncio.wait_for(future, self.timeout_s + 2.0)
        except TimeoutError as exc:
            raise PublishError(f"no acknowledgement from Kafka within {self.timeout_s:.0f}s") from exc

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        remaining = self._producer.flush(self.timeout_s)
        if remaining:
            log.warning("%d upload events were not delivered before shutdown", remaining)
        self._producer.close()
