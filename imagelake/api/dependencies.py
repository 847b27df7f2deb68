"""What a route asks for by naming it as a parameter: the caller's client id, and the resources
:func:`imagelake.api.application.create_app` keeps on ``app.state``.

Routes never reach into the app themselves, so each one shows in its signature what it uses, and
a route added later (in a module of its own, with its own router) asks for the same things the
same way. Each is ``async`` although it never waits: FastAPI runs a plain function dependency in
its thread pool, a hand-off that cost more than the statistics answers themselves.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request

from imagelake.api.metrics import ApiMetrics
from imagelake.api.problems import problem
from imagelake.api.publisher import EventPublisher
from imagelake.catalog import Catalog
from imagelake.lake.store import Lake
from imagelake.settings import Settings

#: The 401 of every route that takes an API key, as /docs describes it.
UNAUTHORIZED = problem("missing or invalid X-API-Key header")


async def app_settings(request: Request) -> Settings:
    return request.app.state.settings


async def app_lake(request: Request) -> Lake:
    return request.app.state.lake


async def app_catalog(request: Request) -> Catalog:
    return request.app.state.catalog


async def app_metrics(request: Request) -> ApiMetrics:
    return request.app.state.metrics


async def app_publisher(request: Request) -> EventPublisher:
    """The producer the app's lifespan started."""
    return request.app.state.publisher


async def started_publisher(request: Request) -> EventPublisher | None:
    """The producer, or None while the lifespan has not started it (nothing has failed yet)."""
    return getattr(request.app.state, "publisher", None)


AppSettings = Annotated[Settings, Depends(app_settings)]
AppLake = Annotated[Lake, Depends(app_lake)]
AppCatalog = Annotated[Catalog, Depends(app_catalog)]
AppPublisher = Annotated[EventPublisher, Depends(app_publisher)]
AppMetrics = Annotated[ApiMetrics, Depends(app_metrics)]


async def client_of(settings: AppSettings, x_api_key: str | None = Header(default=None)) -> str:
    """The client an API key belongs to; a missing or unknown key is a 401."""
    client = settings.api_keys.get(x_api_key or "")
    if client is None:
        raise HTTPException(401, "missing or invalid X-API-Key header")
    return client


ClientId = Annotated[str, Depends(client_of)]
