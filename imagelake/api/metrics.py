"""The API's Prometheus metrics, ``GET /metrics``, and the middleware that times every request.

One registry per app (``app.state.metrics``), so each app, and each test, counts only its own.
The request metrics are labelled by route template, never by path, so that any number of paths
(ids, probes) makes a bounded number of series. ``/metrics`` itself is not counted: scrapes
would otherwise raise the request rate the autoscaler reads (infra/k8s/api/hpa.yaml).

A scrape costs at most one rendering per :data:`RENDER_INTERVAL_S`, whatever the number of
scrapers: concurrent and repeated scrapes within it get the same bytes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: The path Prometheus scrapes.
METRICS_PATH = "/metrics"
#: A scrape within this long of the last rendering gets the same bytes.
RENDER_INTERVAL_S = 1.0
#: Latency buckets (seconds) for requests and the Kafka publish and lake write inside an upload.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: The route label of a request no route matched (a 404 on an unknown path, say).
UNMATCHED = "unmatched"


@dataclass
class ApiMetrics:
    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "imagelake_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=r
        )
        self.request_seconds = Histogram(
            "imagelake_http_request_duration_seconds",
            "Time to answer an HTTP request",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "imagelake_http_requests_in_flight", "HTTP requests being answered right now", registry=r
        )
        self.uploads = Counter(
            "imagelake_uploads", "Uploads by outcome and HTTP status", ["outcome", "status"], registry=r
        )
        self.upload_bytes = Counter(
            "imagelake_upload_bytes", "Bytes of uploaded images received, by outcome", ["outcome"], registry=r
        )
        self.kafka_publish_seconds = Histogram(
            "imagelake_kafka_publish_duration_seconds",
            "Time from producing an upload event to Kafka's acknowledgement",
            ["result"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.lake_write_seconds = Histogram(
            "imagelake_lake_write_duration_seconds",
            "Time to write an uploaded image to the lake's raw zone",
            ["result"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.snapshot_loads = Counter(
            "imagelake_stats_snapshot_loads", "Statistics snapshots loaded", registry=r
        )
        self.snapshot_failures = Counter(
            "imagelake_stats_snapshot_failures",
            "Statistics snapshots (or manifests) that could not be loaded; the last good one is served",
            registry=r,
        )
        self.snapshot_published = Gauge(
            "imagelake_stats_snapshot_published_timestamp_seconds",
            "When the statistics snapshot being served was published (0: none yet)",
            registry=r,
        )
        self.kafka_lag = Gauge(
            "imagelake_kafka_consumer_lag",
            "Upload events on Kafka past the Kafka sensor's cursor (its committed offsets), per partition",
            ["partition"],
            registry=r,
        )
        self.renders = Counter(
            "imagelake_metrics_renders", "Times this exposition was rendered for a scrape", registry=r
        )
        self._rendered = b""
        self._rendered_at = float("-inf")
        self._lock = asyncio.Lock()

    @contextmanager
    def timed(self, histogram: Histogram) -> Iterator[None]:
        """Observe the block's duration with ``result="ok"``, or ``"error"`` if it raises."""
        started = time.perf_counter()
        result = "error"
        try:
            yield
            result = "ok"
        finally:
            histogram.labels(result=result).observe(time.perf_counter() - started)

    async def exposition(self) -> bytes:
        """The registry in Prometheus' text format, rendered at most once per interval."""
        async with self._lock:
            if time.monotonic() - self._rendered_at >= RENDER_INTERVAL_S:
                self.renders.inc()
                self._rendered = generate_latest(self.registry)
                self._rendered_at = time.monotonic()
            return self._rendered


async def metrics_endpoint(request: Request) -> Response:
    metrics: ApiMetrics = request.app.state.metrics
    return Response(await metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


def route_label(scope: Scope) -> str:
    """The template of the route that answered (``/v1/images/{image_id}``), set by the router."""
    route = scope.get("route")
    return getattr(route, "path", None) or UNMATCHED


class RequestMetrics:
    """Counts, times and tracks in flight every HTTP request but the scrapes themselves."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == METRICS_PATH:
            await self.app(scope, receive, send)
            return
        status = 500  # what the client gets if the app fails before answering

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        metrics = self.metrics
        metrics.in_flight.inc()
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_status)
        finally:
            metrics.in_flight.dec()
            route = route_label(scope)
            method = scope["method"]
            metrics.request_seconds.labels(method, route).observe(time.perf_counter() - started)
            metrics.requests.labels(method, route, str(status)).inc()
