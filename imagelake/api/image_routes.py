"""``POST /v1/images`` and ``GET /v1/images/{image_id}``: reading the request and shaping the
answer. What an upload goes through is :func:`imagelake.api.upload.accept_upload`."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Request
from fastapi.concurrency import run_in_threadpool

from imagelake.api.dependencies import (
    UNAUTHORIZED,
    AppCatalog,
    AppLake,
    AppMetrics,
    AppPublisher,
    AppSettings,
    ClientId,
)
from imagelake.api.multipart import ENVELOPE_ALLOWANCE, MAX_PART_HEADER_BYTES, BodyError, read_file_field
from imagelake.api.problems import problem
from imagelake.api.routing import get_and_head
from imagelake.api.status import ImageStatus, image_status
from imagelake.api.upload import FILE_FIELD, Accepted, UploadRefused, accept_upload
from imagelake.catalog import REFUSED, CatalogUnavailable
from imagelake.images.checks import PNG_METADATA_CHUNK_LIMIT, PNG_METADATA_TOTAL_LIMIT
from imagelake.lake import layout
from imagelake.settings import MAX_UPLOAD_BYTES

log = logging.getLogger("imagelake.api")

#: Close the connection after answering: the rest of an oversized body is never read.
CUT = {"Connection": "close"}

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
    400: problem(
        "not a multipart/form-data body, no `file` field, more than one part in the `file` field "
        "(send one image per request; fields with other names are ignored), a text value instead "
        f"of a file upload, an empty file, a part header (such as a file name) over {MAX_PART_HEADER_BYTES:,} "
        "bytes, or a body cut short"
    ),
    401: UNAUTHORIZED,
    413: problem(
        f"the body is over the size cap (IMAGELAKE_MAX_UPLOAD_BYTES, {MAX_UPLOAD_BYTES >> 20} MiB by default); "
        "the connection is closed"
    ),
    409: problem("another request with the same Idempotency-Key is being handled: retry in a few seconds"),
    415: problem("not JPEG, PNG, WebP, GIF or TIFF (recognised from the bytes, not the file name)"),
    422: problem(
        "a corrupt or truncated image, one with more pixels than the cap, or a PNG whose metadata "
        f"(ICC profile, XMP or other text) decompresses to more than {PNG_METADATA_CHUNK_LIMIT >> 20} MiB "
        f"in one chunk or {PNG_METADATA_TOTAL_LIMIT >> 20} MiB in all; or an Idempotency-Key already "
        "used for a different image"
    ),
    503: problem(
        "Kafka, the image catalog or the image store (lake) is unavailable: nothing was kept, retry"
    ),
}

STATUS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "the catalog entry: status, metadata, duplicate and derivative keys"},
    401: UNAUTHORIZED,
    404: problem("no such image for this API key (also for another client's image, or a malformed id)"),
    503: problem("the image catalog is unavailable; retry"),
}

#: Upload outcomes as /metrics counts them: kept (a repeat with its Idempotency-Key included), refused
#: for the request (4xx: the client can fix it), or not kept because a service failed (5xx: retry).
ACCEPTED, REJECTED, FAILED = "accepted", "rejected", "failed"

router = APIRouter()


@router.post(
    "/v1/images",
    status_code=202,
    response_model=Accepted,
    responses=UPLOAD_RESPONSES,
    openapi_extra=UPLOAD_BODY,
)
async def upload_image(
    request: Request,
    client_id: ClientId,
    settings: AppSettings,
    lake: AppLake,
    catalog: AppCatalog,
    publisher: AppPublisher,
    metrics: AppMetrics,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            description=(
                "Any text you choose for this upload (a UUID, say). Retrying with the same key within the "
                "retention period answers the first outcome, with the same image_id, and stores nothing "
                "new; a retry after a 503 is a new attempt."
            ),
        ),
    ] = None,
) -> Accepted:
    """Upload one image as the multipart/form-data field ``file``."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.max_upload_bytes + ENVELOPE_ALLOWANCE:
        metrics.uploads.labels(outcome=REJECTED, status="413").inc()
        raise HTTPException(
            413, f"the request body is larger than the {settings.max_upload_bytes:,}-byte limit"
        )
    try:
        upload = await read_file_field(
            request.stream(), request.headers.get("content-type"), FILE_FIELD, settings.max_upload_bytes
        )
    except BodyError as exc:
        metrics.uploads.labels(outcome=REJECTED, status=str(exc.status)).inc()
        # An unread body is dropped with the connection, never drained.
        raise HTTPException(exc.status, exc.reason, headers=CUT if exc.status == 413 else None) from None
    try:
        accepted = await accept_upload(
            upload,
            client_id,
            settings=settings,
            lake=lake,
            catalog=catalog,
            publisher=publisher,
            idempotency_key=idempotency_key,
            metrics=metrics,
        )
    except UploadRefused as exc:
        outcome = REJECTED if exc.status < 500 else FAILED
        metrics.uploads.labels(outcome=outcome, status=str(exc.status)).inc()
        metrics.upload_bytes.labels(outcome=outcome).inc(len(upload.data))
        raise HTTPException(exc.status, exc.reason) from None
    metrics.uploads.labels(outcome=ACCEPTED, status="202").inc()
    metrics.upload_bytes.labels(outcome=ACCEPTED).inc(len(upload.data))
    return accepted


@get_and_head(
    router,
    "/v1/images/{image_id}",
    response_model=ImageStatus,
    response_model_exclude_none=False,
    responses=STATUS_RESPONSES,
)
async def image_status_of(image_id: str, client_id: ClientId, catalog: AppCatalog) -> ImageStatus:
    """What became of an upload: status, metadata, duplicate info and derivative keys.
    The id is case-insensitive (Crockford base32)."""
    not_found = HTTPException(404, f"no image {echoed(image_id)!r} for this API key")
    try:
        image_id = layout.canonical_image_id(image_id)
    except layout.LayoutError:
        raise not_found from None
    try:
        item = await run_in_threadpool(catalog.get, image_id)
        if item is None or item.get("client_id") != client_id or item.get("status") == REFUSED:
            raise not_found  # another client's image (or a refused upload) is answered like a missing one
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


#: How much of an id from a URL a 404 repeats: a valid id has 26 characters.
ECHO_CHARS = 40


def echoed(image_id: str) -> str:
    """The id as a 404 repeats it: whole up to :data:`ECHO_CHARS` characters, else cut with an
    ellipsis, so a path of any length is never sent back in full."""
    return image_id if len(image_id) <= ECHO_CHARS else image_id[:ECHO_CHARS] + "…"
