"""Accepting one upload: checked, stored, recorded and announced, or nothing is kept.

An upload is accepted only once it is durable: the bytes are in the raw zone
(create-only, under a server-generated key), the catalog holds an
``accepted`` item and Kafka has acknowledged the event. If the catalog or
Kafka refuses, what was written is removed again and the client is told to
retry, so no image exists without its event and no ``accepted`` item stays
behind for an upload the client was told failed.

Nothing here reads the request: the route hands over the file it parsed, so the
whole sequence can be run, and tested, on its own.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from imagelake.api.multipart import UploadedFile, not_a_file_upload
from imagelake.api.publisher import EventPublisher, PublishError
from imagelake.catalog import Catalog, CatalogUnavailable
from imagelake.images.checks import ImageHeader, ImageRejected, check_upload
from imagelake.lake import layout
from imagelake.lake.ids import new_image_id
from imagelake.lake.store import Lake
from imagelake.realtime.events import UploadEvent
from imagelake.settings import Settings

# The API's one logger, whichever of its modules writes the line.
log = logging.getLogger("imagelake.api")

#: The multipart/form-data field that carries the image.
FILE_FIELD = "file"


class Accepted(BaseModel):
    # What the 202 answers. No docstring: it would become the schema's description in /openapi.json.
    image_id: str = Field(
        description="server-generated ULID: ask GET /v1/images/{image_id} what became of it"
    )
    sha256: str = Field(description="SHA-256 of the bytes received, hex")
    status: str = Field(description="always accepted: stored in the raw zone and announced on Kafka")


class UploadRefused(Exception):
    """The upload was not kept: ``status`` is the HTTP status to answer, ``reason`` tells the client why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


async def accept_upload(
    upload: UploadedFile,
    client_id: str,
    *,
    settings: Settings,
    lake: Lake,
    catalog: Catalog,
    publisher: EventPublisher,
) -> Accepted:
    """Keep ``upload`` for ``client_id``, or raise :class:`UploadRefused` having removed what it wrote."""
    header = await checked_image(upload, settings)

    uploaded_at = datetime.now(UTC)
    image_id = new_image_id(int(uploaded_at.timestamp() * 1000))
    key = layout.raw_image_key(layout.dt_of(uploaded_at), image_id)
    event = UploadEvent(
        image_id=image_id,
        client_id=client_id,
        key=key,
        sha256=upload.sha256,
        size_bytes=len(upload.data),
        format=header.format,
        uploaded_at=uploaded_at,
    )
    try:
        await lake.put_async(key, upload.data, create_only=True)
    except Exception as exc:  # any failure of the store (S3, a full or read-only disk): nothing kept
        log.error("upload %s refused: could not write %s to the lake: %r", image_id, key, exc)
        raise UploadRefused(
            503, "the image store (lake) is unavailable, so the upload was not stored; retry in a few seconds"
        ) from None
    try:
        await run_in_threadpool(catalog.put_accepted, event, settings.retention_days)
    except CatalogUnavailable as exc:
        await lake.delete_async(key)
        log.warning("upload %s refused, raw object removed: %s", image_id, exc)
        raise UploadRefused(
            503, "the image catalog is unavailable, so the upload was not stored; retry in a few seconds"
        ) from None
    try:
        partition, offset = await publisher.publish(image_id, event.encode())
    except PublishError as exc:
        await lake.delete_async(key)
        await run_in_threadpool(discard_accepted, catalog, image_id)
        log.warning("upload %s refused, raw object and catalog item removed: %s", image_id, exc)
        raise UploadRefused(
            503, "the event log is unavailable, so the upload was not stored; retry in a few seconds"
        ) from None
    log.info(
        "accepted %s from %s: %s %dx%d, %d bytes -> %s[%d]@%d",
        image_id,
        client_id,
        header.format,
        header.width,
        header.height,
        len(upload.data),
        settings.uploads_topic,
        partition,
        offset,
    )
    return Accepted(image_id=image_id, sha256=upload.sha256, status="accepted")


async def checked_image(upload: UploadedFile, settings: Settings) -> ImageHeader:
    """The upload's format and size, if it is an image the settings allow (decoding runs off the
    event loop, as it takes a while)."""
    try:
        return await run_in_threadpool(
            check_upload, upload.data, max_pixels=settings.max_image_pixels, allowed=settings.allowed_formats
        )
    except ImageRejected as exc:
        if exc.status == 415 and not upload.is_file:
            # A text value (curl -F file=hello) is a mistake in the request, not a wrong format.
            raise UploadRefused(400, not_a_file_upload(FILE_FIELD)) from None
        raise UploadRefused(exc.status, exc.reason) from None


def discard_accepted(catalog: Catalog, image_id: str) -> None:
    """Remove the ``accepted`` item of an upload that was refused (the catalog client retries).

    If DynamoDB stays unreachable the item is left, logged, and expires with
    its TTL; the client never learnt its image id, so nobody is told it exists.
    """
    try:
        catalog.discard_accepted(image_id)
    except CatalogUnavailable as exc:
        log.error("could not remove the accepted catalog item of refused upload %s: %s", image_id, exc)
