"""The upload API: ``POST /v1/images``, ``GET /v1/images/{image_id}``, ``GET /healthz``.

``HEAD`` is answered wherever ``GET`` is (the same status and headers, no body),
and a path with one trailing slash is served as the path without it
(:class:`TrailingSlashTolerant`). What an upload goes through is
:func:`imagelake.api.upload.accept_upload`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from imagelake.api.multipart import ENVELOPE_ALLOWANCE, MAX_PART_HEADER_BYTES, BodyError, read_file_field
from imagelake.api.publisher import EventPublisher
from imagelake.api.status import ImageStatus, image_status
from imagelake.api.upload import FILE_FIELD, Accepted, UploadRefused, accept_upload
from imagelake.catalog import Catalog, CatalogUnavailable
from imagelake.images.checks import PNG_METADATA_CHUNK_LIMIT, PNG_METADATA_TOTAL_LIMIT
from imagelake.lake import layout
from imagelake.lake.store import Lake
from imagelake.realtime.kafka import KafkaConnection, producer_config
from imagelake.settings import MAX_UPLOAD_BYTES, Settings, get_settings

log = logging.getLogger("imagelake.api")

#: Close the connection after answering: the rest of an oversized body is never read.
CUT = {"Connection": "close"}


class Problem(BaseModel):
    """Every error the API answers: what went wrong and, where it can, what to do."""

    detail: str


def _problem(description: str) -> dict[str, Any]:
    return {"model": Problem, "description": description}


UNAUTHORIZED = _problem("missing or invalid X-API-Key header")

#: The upload's request body as /docs shows it (the route parses the stream itself, so FastAPI
#: cannot infer it): multipart/form-data with the image, as a file, in the field ``file``.
UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FILE_FIELD],
                    "properties": {
                        FILE_FIELD: {
                            "type": "string",
                            "format": "binary",
                            "contentMediaType": "application/octet-stream",
                            "description": (
                                "the image, sent as a file (curl -F file=@photo.jpg): JPEG, PNG, WebP, "
                                "GIF or TIFF, recognised from its bytes"
                            ),
                        }
                    },
                }
            }
        },
    }
}

UPLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"description": "accepted: stored in the raw zone, in the catalog, and acknowledged by Kafka"},
    400: _problem(
        "not a multipart/form-data body, no `file` field, more than one part in the `file` field "
        "(send one image per request; fields with other names are ignored), a text value instead "
        f"of a file upload, an empty file, a part header (such as a file name) over {MAX_PART_HEADER_BYTES:,} "
        "bytes, or a body cut short"
    ),
    401: UNAUTHORIZED,
    413: _problem(
        f"the body is over the size cap (IMAGELAKE_MAX_UPLOAD_BYTES, {MAX_UPLOAD_BYTES >> 20} MiB by default); "
        "the connection is closed"
    ),
    415: _problem("not JPEG, PNG, WebP, GIF or TIFF (recognised from the bytes, not the file name)"),
    422: _problem(
        "a corrupt or truncated image, one with more pixels than the cap, or a PNG whose metadata "
        f"(ICC profile, XMP or other text) decompresses to more than {PNG_METADATA_CHUNK_LIMIT >> 20} MiB "
        f"in one chunk or {PNG_METADATA_TOTAL_LIMIT >> 20} MiB in all"
    ),
    503: _problem(
        "Kafka, the image catalog or the image store (lake) is unavailable: nothing was kept, retry"
    ),
}

STATUS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "the catalog entry: status, metadata, duplicate and derivative keys"},
    401: UNAUTHORIZED,
    404: _problem("no such image for this API key (also for another client's image, or a malformed id)"),
    503: _problem("the image catalog is unavailable; retry"),
}

HEALTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "the API is up and its Kafka producer works"},
    503: _problem("the Kafka producer failed for good: restart the API"),
}


class TrailingSlashTolerant:
    """Serve ``/v1/images/`` as ``/v1/images`` (one trailing slash dropped before routing).

    Starlette's default answers such a path with a 307 redirect and an empty
    body: a client that does not follow redirects (curl without ``-L``, most
    HTTP libraries for a POST) gets no message at all, and one that does sends
    the whole upload twice. The slash names the same resource, so a client
    expects the same answer, not an error: the request is served as is.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and len(path := scope["path"]) > 1 and path.endswith("/"):
            scope = {**scope, "path": path[:-1]}
            raw = scope.get("raw_path")
            if isinstance(raw, bytes) and raw.endswith(b"/"):
                scope["raw_path"] = raw[:-1]
        await self.app(scope, receive, send)


def create_app(
    settings: Settings | None = None,
    *,
    lake: Lake | None = None,
    publisher: EventPublisher | None = None,
    catalog: Catalog | None = None,
) -> FastAPI:
    """Build the app; the lake, the publisher and the catalog default to the ones the settings name."""
    settings = settings or get_settings()
    lake = lake or Lake.from_settings(settings)
    catalog = catalog or Catalog.from_settings(settings)
    state: dict[str, EventPublisher] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state["publisher"] = publisher or EventPublisher(
            producer_config(KafkaConnection.from_settings(settings), settings.kafka_delivery_timeout_s),
            settings.uploads_topic,
            settings.kafka_delivery_timeout_s,
        )
        try:
            yield
        finally:
            if publisher is None:
                state["publisher"].close()

    app = FastAPI(
        title="imagelake upload API",
        version="1",
        lifespan=lifespan,
        description="Upload images into the imagelake raw zone. Authenticate with the X-API-Key header.",
        redirect_slashes=False,
    )
    app.add_middleware(TrailingSlashTolerant)

    def get_and_head(path: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Route GET ``path``, and HEAD to the same handler: the same status and headers, and the
        server sends no body. HEAD stays out of the OpenAPI document (GET describes it)."""

        def register(endpoint: Callable[..., Any]) -> Callable[..., Any]:
            app.add_api_route(path, endpoint, methods=["HEAD"], include_in_schema=False, **kwargs)
            return app.get(path, **kwargs)(endpoint)

        return register

    async def method_not_allowed(request: Request, exc: Exception) -> JSONResponse:
        """A 405 whose Allow header names every method the path answers.

        GET and HEAD are separate routes (see ``get_and_head``), and the router's 405 names only
        the methods of the first route whose path matched (HEAD alone): the methods of every
        route matching the path are gathered here instead, in a stable (sorted) order."""
        allowed = sorted(
            {
                method
                for route in app.router.routes
                if route.matches(request.scope)[0] is not Match.NONE
                for method in getattr(route, "methods", None) or ()
            }
        )
        if not allowed and isinstance(exc, StarletteHTTPException) and exc.headers:
            allowed = [m.strip() for m in exc.headers.get("Allow", "").split(",") if m.strip()]
        return JSONResponse(
            {"detail": f"{request.method} is not allowed here: use {' or '.join(allowed)}"},
            status_code=405,
            headers={"Allow": ", ".join(allowed)},
        )

    app.add_exception_handler(405, method_not_allowed)

    def client_for(api_key: str | None) -> str:
        client = settings.api_keys.get(api_key or "")
        if client is None:
            raise HTTPException(401, "missing or invalid X-API-Key header")
        return client

    @get_and_head("/healthz", responses=HEALTH_RESPONSES)
    async def healthz() -> dict[str, str]:
        pub = state.get("publisher")
        if pub is not None and pub.fatal_error:
            raise HTTPException(503, f"Kafka producer failed: {pub.fatal_error}")
        return {"status": "ok"}

    @app.post(
        "/v1/images",
        status_code=202,
        response_model=Accepted,
        responses=UPLOAD_RESPONSES,
        openapi_extra=UPLOAD_BODY,
    )
    async def upload_image(request: Request, x_api_key: str | None = Header(default=None)) -> Accepted:
        """Upload one image as the multipart/form-data field ``file``."""
        client_id = client_for(x_api_key)
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > settings.max_upload_bytes + ENVELOPE_ALLOWANCE:
            raise HTTPException(
                413, f"the request body is larger than the {settings.max_upload_bytes:,}-byte limit"
            )
        try:
            upload = await read_file_field(
                request.stream(), request.headers.get("content-type"), FILE_FIELD, settings.max_upload_bytes
            )
        except BodyError as exc:
            # An unread body is dropped with the connection, never drained.
            raise HTTPException(exc.status, exc.reason, headers=CUT if exc.status == 413 else None) from None
        try:
            return await accept_upload(
                upload, client_id, settings=settings, lake=lake, catalog=catalog, publisher=state["publisher"]
            )
        except UploadRefused as exc:
            raise HTTPException(exc.status, exc.reason) from None

    @get_and_head(
        "/v1/images/{image_id}",
        response_model=ImageStatus,
        response_model_exclude_none=False,
        responses=STATUS_RESPONSES,
    )
    async def image_status_of(image_id: str, x_api_key: str | None = Header(default=None)) -> ImageStatus:
        """What became of an upload: status, metadata, duplicate info and derivative keys.
        The id is case-insensitive (Crockford base32)."""
        client_id = client_for(x_api_key)
        not_found = HTTPException(404, f"no image {echoed(image_id)!r} for this API key")
        try:
            image_id = layout.canonical_image_id(image_id)
        except layout.LayoutError:
            raise not_found from None
        try:
            item = await run_in_threadpool(catalog.get, image_id)
            if item is None or item.get("client_id") != client_id:
                raise not_found  # another client's image is answered exactly like a missing one
            show_duplicate = False
            if (original := item.get("duplicate_of")) is not None:
                found = await run_in_threadpool(catalog.get, original)
                show_duplicate = found is not None and found.get("client_id") == client_id
        except CatalogUnavailable as exc:
            log.warning("catalog read for %s failed: %s", image_id, exc)
            raise HTTPException(503, "the image catalog is unavailable; retry in a few seconds") from None
        # The run records each client's own earliest copy (resolution.own_client_verdicts); the
        # check above guards items written before that, which name the earliest of any client.
        return image_status(item, show_duplicate=show_duplicate)

    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        """FastAPI's document, less the 422 "Validation Error" it lists for any route with
        parameters: the status route's path and header are plain strings, so it never answers 422."""
        schema = app.openapi_schema
        if schema is None:
            schema = default_openapi()  # caches itself in app.openapi_schema
            schema["paths"]["/v1/images/{image_id}"]["get"]["responses"].pop("422", None)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


#: How much of an id from a URL a 404 repeats: a valid id has 26 characters.
ECHO_CHARS = 40


def echoed(image_id: str) -> str:
    """The id as a 404 repeats it: whole up to :data:`ECHO_CHARS` characters, else cut with an
    ellipsis, so a path of any length is never sent back in full."""
    return image_id if len(image_id) <= ECHO_CHARS else image_id[:ECHO_CHARS] + "…"
