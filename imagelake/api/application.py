"""The upload API: ``POST /v1/images``, ``GET /v1/images/{image_id}``, the statistics
(``GET /v1/stats/usage``, ``GET /v1/stats/service``), ``GET /healthz`` and ``GET /metrics``.

:func:`create_app` only wires: the resources go on ``app.state`` (routes ask for
them through :mod:`imagelake.api.dependencies`), then the middleware, the
exception handlers, the routers (one module of routes each, ``*_routes.py``)
and the OpenAPI document's one correction. What an upload goes through is
:mod:`imagelake.api.upload`.

``HEAD`` is answered wherever ``GET`` is (the same status and headers, no body),
and a path with one trailing slash is served as the path without it
(:mod:`imagelake.api.routing`). Every request gets an id (:mod:`imagelake.api.request_ids`) and is
counted and timed (:mod:`imagelake.api.metrics`). ``/docs`` and ``/redoc`` load Swagger UI and
ReDoc from the fastapi-offline package, not from a CDN, so they render on a machine without
internet access.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse
from fastapi_offline import FastAPIOffline

from imagelake.api import health_routes, image_routes, stats_routes
from imagelake.api.background_tasks import KAFKA_LAG_INTERVAL_S, poll_snapshot, read_kafka_lag, running
from imagelake.api.metrics import METRICS_PATH, ApiMetrics, RequestMetrics, metrics_endpoint
from imagelake.api.publisher import EventPublisher
from imagelake.api.request_ids import RequestIds
from imagelake.api.routing import TrailingSlashTolerant, method_not_allowed
from imagelake.catalog import Catalog
from imagelake.lake.store import Lake
from imagelake.realtime.kafka import KafkaConnection, producer_config
from imagelake.settings import STATS_POLL_INTERVAL_S, Settings, get_settings
from imagelake.stats.snapshot_reader import SnapshotReader


def create_app(
    settings: Settings | None = None,
    *,
    lake: Lake | None = None,
    publisher: EventPublisher | None = None,
    catalog: Catalog | None = None,
) -> FastAPI:
    """Build the app; the lake, the publisher and the catalog default to the ones the settings name."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The producer starts a thread and connects: only a served app needs one.
        app.state.publisher = publisher or EventPublisher(
            producer_config(KafkaConnection.from_settings(settings), settings.kafka_delivery_timeout_s),
            settings.uploads_topic,
            settings.kafka_delivery_timeout_s,
        )
        stats, metrics = app.state.stats, app.state.metrics
        # A replica starts serving the last snapshot at once, then follows the new ones.
        await run_in_threadpool(poll_snapshot, stats, metrics)
        kafka = KafkaConnection.from_settings(settings)
        try:
            async with running(
                (STATS_POLL_INTERVAL_S, lambda: poll_snapshot(stats, metrics)),
                (KAFKA_LAG_INTERVAL_S, lambda: read_kafka_lag(kafka, settings.uploads_topic, metrics)),
            ):
                yield
        finally:
            if publisher is None:
                app.state.publisher.close()

    app = FastAPIOffline(
        title="imagelake upload API",
        version="1",
        lifespan=lifespan,
        description=(
            "Upload images into the imagelake raw zone and read usage statistics. "
            "Authenticate with the X-API-Key header."
        ),
        redirect_slashes=False,
    )
    app.state.settings = settings
    app.state.lake = lake or Lake.from_settings(settings)
    app.state.catalog = catalog or Catalog.from_settings(settings)
    app.state.metrics = ApiMetrics()
    app.state.stats = SnapshotReader(app.state.lake)

    # Added innermost first: the id is set before anything logs, and the metrics see the path
    # the router matched (after a trailing slash is dropped).
    app.add_middleware(RequestMetrics, metrics=app.state.metrics)
    app.add_middleware(TrailingSlashTolerant)
    app.add_middleware(RequestIds)
    app.add_exception_handler(405, method_not_allowed)

    app.include_router(health_routes.router)
    app.include_router(image_routes.router)
    app.include_router(stats_routes.router)
    app.add_api_route(
        METRICS_PATH,
        metrics_endpoint,
        methods=["GET"],
        response_class=PlainTextResponse,
        summary="Metrics",
        description="Prometheus metrics of this replica (text exposition format); scraped, not counted.",
        responses={200: {"description": "metrics in Prometheus' text format", "content": {"text/plain": {}}}},
    )

    without_validation_error_on_status(app)
    return app


def without_validation_error_on_status(app: FastAPI) -> None:
    """Serve FastAPI's document less the 422 "Validation Error" it lists for any route with
    parameters: the status and statistics routes take plain strings (the statistics check their
    dates themselves, answering 400), so they never answer 422."""
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        schema = app.openapi_schema
        if schema is None:
            schema = default_openapi()  # caches itself in app.openapi_schema
            for path in ("/v1/images/{image_id}", "/v1/stats/usage", "/v1/stats/service"):
                schema["paths"][path]["get"]["responses"].pop("422", None)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
