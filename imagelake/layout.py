"""The lake's key layout: every object key imagelake reads or writes is built here.

Zones and their keys (DESIGN.md, "Lake layout"):

    raw/images/dt=YYYY-MM-DD/<image_id>                    uploaded bytes, write-once
    raw/events/dt=YYYY-MM-DD/<batch_id>.parquet             the Kafka batch, archived
    raw/dead_letters/dt=YYYY-MM-DD/<batch_id>.parquet       messages that could not be parsed
    curated/<table>/dt=YYYY-MM-DD/<batch_id>.parquet        curated tables (image_metadata, hash_index, ...)
    derivatives/<size>/<image_id>.<ext>                     resized copies

``dt`` is always the upload date in UTC, so a late event lands on its own day.
A batch id names a contiguous offset range of one Kafka partition, which makes
every file a batch writes deterministic: re-running the batch rewrites the
same keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

RAW_IMAGES = "raw/images"
RAW_EVENTS = "raw/events"
RAW_DEAD_LETTERS = "raw/dead_letters"
CURATED = "curated"
DERIVATIVES = "derivatives"

#: Curated tables, each a folder under ``curated/``.
IMAGE_METADATA = "image_metadata"
#: The duplicate index: every image a batch has seen, with its hashes (imagelake/duplicates.py).
HASH_INDEX = "hash_index"

ZONES: tuple[str, ...] = ("raw", "curated", "derivatives")

_DT_RE = re.compile(r"(?:^|/)dt=(\d{4}-\d{2}-\d{2})(?:/|$)")
_IMAGE_ID_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


class LayoutError(ValueError):
    """A key or identifier does not follow the lake layout."""


def dt_of(moment: datetime | date) -> str:
    """The ``dt`` partition value (UTC date) for a moment or a date."""
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            raise LayoutError("naive datetime: lake partitions are UTC, pass an aware datetime")
        moment = moment.astimezone(UTC).date()
    return moment.isoformat()


def parse_dt(key: str) -> date:
    """The ``dt=`` date inside a key; raises :class:`LayoutError` if absent."""
    match = _DT_RE.search(key)
    if not match:
        raise LayoutError(f"no dt=YYYY-MM-DD partition in key {key!r}")
    return date.fromisoformat(match.group(1))


def check_image_id(image_id: str) -> str:
    """Image ids are server-generated ULIDs; anything else never reaches a key."""
    if not _IMAGE_ID_RE.match(image_id):
        raise LayoutError(f"not an image id: {image_id!r}")
    return image_id


def raw_image_key(dt: str, image_id: str) -> str:
    return f"{RAW_IMAGES}/dt={dt}/{check_image_id(image_id)}"


def raw_images_prefix(dt: str | None = None) -> str:
    return f"{RAW_IMAGES}/dt={dt}/" if dt else f"{RAW_IMAGES}/"


#: Every Parquet table of the lake and the folder it lives in (schemas: imagelake/schemas.py).
TABLE_PREFIXES: dict[str, str] = {
    "upload_events": f"{RAW_EVENTS}/",
    "dead_letters": f"{RAW_DEAD_LETTERS}/",
    IMAGE_METADATA: f"{CURATED}/{IMAGE_METADATA}/",
    "derivatives": f"{CURATED}/derivatives/",
    "storage_inventory": f"{CURATED}/storage_inventory/",
    HASH_INDEX: f"{CURATED}/{HASH_INDEX}/",
}


def table_prefix(table: str) -> str:
    """The folder of a batch-written table (``raw/events/`` for ``upload_events``)."""
    try:
        return TABLE_PREFIXES[table]
    except KeyError:
        raise LayoutError(f"unknown table {table!r}; known: {sorted(TABLE_PREFIXES)}") from None


def batch_file_key(table: str, dt: str, batch_id: str) -> str:
    """Where one batch's rows of one upload date live in a table."""
    return f"{table_prefix(table)}dt={dt}/{batch_id}.parquet"


def derivative_key(size: int, image_id: str, ext: str) -> str:
    return f"{DERIVATIVES}/{int(size)}/{check_image_id(image_id)}.{ext.lstrip('.')}"


@dataclass(frozen=True, order=True)
class BatchId:
    """A contiguous, inclusive offset range of one partition of a topic."""

    topic: str
    partition: int
    first: int
    last: int

    def __post_init__(self) -> None:
        if self.partition < 0 or self.first < 0 or self.last < self.first:
            raise LayoutError(f"bad batch range {self.partition}:{self.first}-{self.last}")

    def __str__(self) -> str:
        return f"{self.topic}-{self.partition}-{self.first}-{self.last}"

    @property
    def size(self) -> int:
        return self.last - self.first + 1

    @classmethod
    def parse(cls, text: str) -> BatchId:
        parts = text.rsplit("-", 3)
        if len(parts) != 4 or not all(p.isdigit() for p in parts[1:]) or not parts[0]:
            raise LayoutError(f"not a batch id (<topic>-<partition>-<first>-<last>): {text!r}")
        return cls(parts[0], int(parts[1]), int(parts[2]), int(parts[3]))
