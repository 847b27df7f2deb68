"""What ``GET /v1/images/{image_id}`` answers: the catalog item, shaped for clients."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from imagelake.catalog import TTL_ATTRIBUTE
from imagelake.lake.schemas import FACT_COLUMNS


class ImageMetadata(BaseModel):
    """Facts the real-time run found (all null until it has run, or when it failed)."""

    sha256: str | None = None
    size_bytes: int | None = None
    format: str | None = None
    width: int | None = Field(None, description="as displayed: EXIF orientation applied")
    height: int | None = None
    mode: str | None = None
    bit_depth: int | None = None
    frame_count: int | None = None
    orientation: int | None = None
    has_icc: bool | None = None
    has_gps: bool | None = Field(None, description="a flag only: coordinates are never stored")
    exif_captured_at: datetime | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    phash: str | None = Field(None, description="64-bit perceptual hash, 16 hex digits")
    brightness_mean: float | None = None
    contrast: float | None = None
    colourfulness: float | None = None


class Duplicate(BaseModel):
    of: str = Field(description="the earliest image this one duplicates (always one of yours)")
    kind: str = Field(description="exact (same bytes) or near (similar perceptual hash)")
    distance: int = Field(description="perceptual-hash Hamming distance, 0 for exact copies")


class ImageStatus(BaseModel):
    image_id: str
    status: str = Field(description="accepted, then processed or failed")
    error: str | None = Field(None, description="why processing failed")
    uploaded_at: datetime | None = None
    processed_at: datetime | None = None
    expires_at: datetime | None = Field(None, description="when the catalog forgets the image")
    metadata: ImageMetadata
    duplicate: Duplicate | None = Field(
        None, description="set when the image repeats an earlier upload of yours, exactly or nearly"
    )
    derivatives: dict[str, Any] = Field(default_factory=dict, description="keys of resized copies")
    derivatives_error: str | None = Field(
        None,
        description=(
            "why the resized copies could not be made (the upload itself is fine); "
            "cleared when a later derivatives run makes them"
        ),
    )


def image_status(item: dict[str, Any], *, show_duplicate: bool) -> ImageStatus:
    """The client's view of a catalog item; its duplicate verdict only if ``show_duplicate``
    (the original is the same client's upload)."""
    duplicate = None
    if show_duplicate and item.get("duplicate_of"):
        duplicate = Duplicate(
            of=item["duplicate_of"], kind=item["duplicate_kind"], distance=item["duplicate_distance"]
        )
    expires = item.get(TTL_ATTRIBUTE)
    return ImageStatus(
        image_id=item["image_id"],
        status=item.get("status", "accepted"),
        error=item.get("error"),
        uploaded_at=item.get("uploaded_at"),
        processed_at=item.get("processed_at"),
        expires_at=datetime.fromtimestamp(expires, tz=UTC) if isinstance(expires, int) else None,
        metadata=ImageMetadata(**{c: item.get(c) for c in ("sha256", "size_bytes", *FACT_COLUMNS)}),
        duplicate=duplicate,
        derivatives=item.get("derivatives") or {},
        derivatives_error=item.get("derivatives_error"),
    )
