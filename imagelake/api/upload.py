"""Accepting one upload: checked, stored, recorded and announced, or nothing is kept.

An upload is accepted only once it is durable: the bytes are in the raw zone
(create-only, under a server-generated key), the catalog holds an
``accepted`` item and Kafka has acknowledged the event. If the lake or the
catalog refuses, what was written is removed again and the client is told to
retry.

If Kafka does not acknowledge the event in time, the event may still reach
Kafka (the idempotent producer keeps trying, or the broker wrote it and the
answer was lost). The catalog decides, once: the API marks the item
``refused`` unless a real-time batch has already claimed it
(:meth:`imagelake.catalog.Catalog.refuse`). Refused: the raw object goes, the
client gets a 503, and an event that arrives later is set aside as a dead
letter, never counted. Claimed: the upload stands and the client gets its 202.
Either way the client is told what happened, and it is counted once or not at
all.

With an ``Idempotency-Key``, a retry of an upload that stood answers the first
outcome (the same image id) and stores nothing; a retry of one that did not
stand is a new upload. The key is kept as long as the images (the retention).

Nothing here reads the request: the route hands over the file it parsed, so the
whole sequence can be run, and tested, on its own.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime

from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from imagelake.api.metrics import ApiMetrics
from imagelake.api.multipart import UploadedFile, not_a_file_upload
from imagelake.api.publisher import EventPublisher, PublishError
from imagelake.api.request_ids import current_request_id
from imagelake.catalog import REFUSED, Catalog, CatalogUnavailable
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
    request_id: str | None = Field(
        default=None,
        description="this request's id (also the X-Request-ID header): quote it when asking about the upload",
    )


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
    idempotency_key: str | None = None,
    metrics: ApiMetrics | None = None,
) -> Accepted:
    """Keep ``upload`` for ``client_id``, or raise :class:`UploadRefused` having removed what it wrote.
    With ``metrics``, the lake write and the Kafka publish are timed."""
    metrics = metrics or ApiMetrics()
    request_id = current_request_id()
    header = await checked_image(upload, settings)

    replaces: str | None = None
    if idempotency_key is not None:
        first = await run_in_threadpool(
            first_outcome, catalog, client_id, idempotency_key, upload.sha256, settings
        )
        if isinstance(first, Accepted):
            log.info(
                "upload %s from %s repeated with its Idempotency-Key: nothing stored",
                first.image_id,
                client_id,
            )
            return first.model_copy(update={"request_id": request_id})
        replaces = first
    uploaded_at = datetime.now(UTC)
    image_id = new_image_id(int(uploaded_at.timestamp() * 1000))
    if idempotency_key is not None:
        reserved = await run_in_threadpool(
            reserve, catalog, client_id, idempotency_key, image_id, replaces, settings.retention_days
        )
        if not reserved:
            raise UploadRefused(409, IN_PROGRESS)
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
        with metrics.timed(metrics.lake_write_seconds):
            await lake.put_async(key, upload.data, create_only=True)
    except Exception as exc:  # any failure of the store (S3, a full or read-only disk): nothing kept
        log.error("upload %s refused: could not write %s to the lake: %r", image_id, key, exc)
        if idempotency_key is not None:
            with contextlib.suppress(CatalogUnavailable):
                reason = "the lake could not store it"
                await run_in_threadpool(
                    catalog.put_refused, image_id, client_id, reason, settings.retention_days
                )
        raise UploadRefused(
            503, "the image store (lake) is unavailable, so the upload was not stored; retry in a few seconds"
        ) from None
    try:
        await run_in_threadpool(catalog.put_accepted, event, settings.retention_days, request_id)
    except CatalogUnavailable as exc:
        await lake.delete_async(key)
        log.warning("upload %s refused, raw object removed: %s", image_id, exc)
        raise UploadRefused(
            503, "the image catalog is unavailable, so the upload was not stored; retry in a few seconds"
        ) from None
    try:
        with metrics.timed(metrics.kafka_publish_seconds):
            partition, offset = await publisher.publish(image_id, event.encode())
    except PublishError as exc:
        if not await run_in_threadpool(refuse, catalog, image_id, str(exc)):
            log.warning(
                "upload %s stands although Kafka did not acknowledge in time: a batch took it", image_id
            )
            return Accepted(image_id=image_id, sha256=upload.sha256, status="accepted", request_id=request_id)
        await lake.delete_async(key)
        log.warning("upload %s refused, raw object removed, catalog item marked refused: %s", image_id, exc)
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
    return Accepted(image_id=image_id, sha256=upload.sha256, status="accepted", request_id=request_id)


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


def refuse(catalog: Catalog, image_id: str, reason: str) -> bool:
    """Mark an upload refused unless a batch claimed it; True if refused (see the module's docstring).

    If DynamoDB is unreachable too, nothing can be decided: the upload is answered 503 and its
    object and ``accepted`` item are left as they are, logged, to be processed if its event does
    arrive, and kept by garbage collection either way (an item stands behind them).
    """
    try:
        return catalog.refuse(image_id, f"not acknowledged by Kafka in time: {reason}")
    except CatalogUnavailable as exc:
        log.error("upload %s: Kafka did not acknowledge and the catalog is unreachable: %s", image_id, exc)
        raise UploadRefused(
            503, "the event log and the image catalog are unavailable; retry in a few seconds"
        ) from None


#: The answer to a request whose Idempotency-Key another request holds right now.
IN_PROGRESS = "another request with this Idempotency-Key is being handled; retry in a few seconds"
#: How long a reserved key whose upload has no catalog item yet counts as in progress: longer than
#: any upload takes (the Kafka delivery timeout is the slowest step), shorter than a client waits.
IN_PROGRESS_S = 60.0


def first_outcome(
    catalog: Catalog, client_id: str, key: str, sha256: str, settings: Settings
) -> Accepted | str | None:
    """What an earlier request with this ``Idempotency-Key`` left: its answer if its upload stood,
    else the id of the attempt that did not (to replace), else None (the key is new)."""
    try:
        record = catalog.idempotency_record(client_id, key)
        if record is None:
            return None
        item = catalog.get(record["image_id"])
    except CatalogUnavailable as exc:
        raise UploadRefused(503, "the image catalog is unavailable; retry in a few seconds") from exc
    if item is not None and item.get("status") != REFUSED:
        if item.get("sha256") != sha256:
            raise UploadRefused(
                422, "this Idempotency-Key was used for a different image: use a new key for a new upload"
            )
        return Accepted(image_id=record["image_id"], sha256=sha256, status="accepted")
    age = datetime.now(UTC) - datetime.fromisoformat(record["reserved_at"])
    if item is None and age.total_seconds() < IN_PROGRESS_S:
        raise UploadRefused(409, IN_PROGRESS)
    return str(record["image_id"])


def reserve(
    catalog: Catalog, client_id: str, key: str, image_id: str, replaces: str | None, retention_days: int
) -> bool:
    try:
        return catalog.reserve_idempotency_key(
            client_id, key, image_id, replaces=replaces, retention_days=retention_days
        )
    except CatalogUnavailable as exc:
        raise UploadRefused(503, "the image catalog is unavailable; retry in a few seconds") from exc
