"""The upload event: the one message schema on the ``image-uploads`` topic.

Versioned: ``schema_version`` is checked on read. A new optional field is a
compatible change (readers ignore fields they do not know); anything else
bumps the version, and readers dead-letter versions they do not understand.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from imagelake.lake import layout
from imagelake.settings import ALLOWED_FORMATS

SCHEMA_VERSION: Literal[1] = 1
EVENT_TYPE: Literal["image.uploaded"] = "image.uploaded"


class EventDecodeError(ValueError):
    """A message is not a valid upload event; ``reason`` says why (for the dead letter)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UploadEvent(BaseModel):
    """Announces one image stored in the raw zone."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: Literal[1] = SCHEMA_VERSION
    event_type: Literal["image.uploaded"] = EVENT_TYPE
    image_id: str = Field(pattern=r"^[0-9A-HJKMNP-TV-Z]{26}$")
    client_id: str = Field(min_length=1, max_length=128)
    key: str = Field(min_length=1, max_length=1024)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(gt=0)
    format: str
    uploaded_at: datetime

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value not in ALLOWED_FORMATS:
            raise ValueError(f"format {value!r} is not one of {', '.join(ALLOWED_FORMATS)}")
        return value

    @field_validator("uploaded_at")
    @classmethod
    def _aware_utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("uploaded_at must carry a timezone")
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _key_matches_layout(self) -> UploadEvent:
        expected = layout.raw_image_key(self.dt, self.image_id)
        if self.key != expected:
            raise ValueError(f"key {self.key!r} does not match the lake layout ({expected!r})")
        return self

    @property
    def dt(self) -> str:
        return layout.dt_of(self.uploaded_at)

    def encode(self) -> bytes:
        return self.model_dump_json().encode()


def decode_event(raw: bytes | None) -> UploadEvent:
    """Parse a Kafka message value, or raise :class:`EventDecodeError` with a reason."""
    if raw is None or raw == b"":
        raise EventDecodeError("empty message")
    try:
        return UploadEvent.model_validate_json(raw)
    except ValidationError as exc:
        errors = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'message'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise EventDecodeError(f"invalid upload event: {errors}") from None
