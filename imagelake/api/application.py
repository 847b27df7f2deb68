"""The upload API: ``POST /v1/images``, ``GET /v1/images/{image_id}``, ``GET /healthz``.

:func:`create_app` only wires: the resources go on ``app.state`` (routes ask for
them through :mod:`imagelake.api.dependencies`), then the middleware, the
exception handlers, the routers (one module of routes each, ``*_routes.py``)
and the OpenAPI document's one correction. What an upload goes through is
:mod:`imagelake.api.upload`.

``HEAD`` is answered wherever ``GET`` is (the same status and headers, no body),
and a path with one trailing slash is served as the path without it
(:mod:`imagelake.api.routing`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from imagelake.api import health_routes, image_routes
from imagelake.api.publisher import EventPublisher
from imagelake.api.routing import TrailingSlashTolerant, method_not_allowed
from imagelake.catalog import Catalog
from imagelake.lake.store import Lake
from imagelake.realtime.kafka import KafkaConnection, producer_config
from imagelake.settings import Settings, get_settings


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
        try:
            yield
        finally:
            if publisher is None:
                app.state.publisher.close()

    app = FastAPI(
        title="imagelake upload API",
        version="1",
        lifespan=lifespan,
        description="Upload images into the imagelake raw zone. Authenticate with the X-API-Key header.",
        redirect_slashes=False,
    )
    app.state.settings = settings
    app.state.lake = lake or Lake.from_settings(settings)
    app.state.catalog = catalog or Catalog.from_settings(settings)

    app.add_middleware(TrailingSlashTolerant)
    app.add_exception_handler(405, method_not_allowed)

    app.include_router(health_routes.router)
    app.include_router(image_routes.router)

    without_validation_error_on_status(app)
    return app


def without_validation_error_on_status(app: FastAPI) -> None:
    """Serve FastAPI's document less the 422 "Validation Error" it lists for any route with
    parameters: the status route's path and header are plain strings, so it never answers 422."""
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        schema = app.openapi_schema
        if schema is None:
            schema = default_openapi()  # caches itself in app.openapi_schema
            schema["paths"]["/v1/images/{image_id}"]["get"]["responses"].pop("422", None)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
