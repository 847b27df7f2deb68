"""The lake's key layout: every object key imagelake reads or writes is built here.

Zones and their keys (DESIGN.md, "Lake layout"):

    raw/images/dt=YYYY-MM-DD/<image_id>                    uploaded bytes, write-once
    raw/events/dt=YYYY-MM-DD/<batch_id>.parquet             the Kafka batch, archived
    raw/dead_letters/dt=YYYY-MM-DD/<batch_id>.parquet       messages that could not be parsed
    curated/<table>/dt=YYYY-MM-DD/<batch_id>.parquet        curated tables (image_metadata, ...)
    curated/hash_index/dt=YYYY-MM-DD/<batch_id|merged-…>.parquet   the duplicate index (internal)
    derivatives/<size>/<image_id>.<ext>                     resized copies
    serving/stats/<generation>/<table>.parquet              statistics snapshots the API serves
    serving/stats/manifest.json                             which generations are current

``serving/`` is not a zone of the data: garbage collection and the storage inventory leave it
alone, and the snapshot publisher prunes its own generations (imagelake/stats/snapshot_files.py).

``dt`` is always the upload date in UTC, so a late event lands on its own day.
A batch id names a contiguous offset range of one Kafka partition, which makes
every file a batch writes deterministic: re-running the batch rewrites the
same keys.

Compaction (``spark_jobs/compaction_spark.py``) rewrites the batch files of a closed
day into ``<table prefix>/dt=YYYY-MM-DD/compacted-<digest>-pNNN.parquet``,
verifies them, then deletes the files they replace. For a while both exist.

How a reader counts each row exactly once while compaction runs is the read rule's
(:mod:`imagelake.lake.read_rule`).
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
#: The duplicate index: every image a batch has seen, with its hashes (imagelake/realtime/hash_index.py).
#: Internal to the real-time path, so not in TABLE_PREFIXES (no warehouse source, no Glue table,
#: not compacted by the batch jobs: the real-time runs merge its files themselves).
HASH_INDEX = "hash_index"
HASH_INDEX_PREFIX = f"{CURATED}/{HASH_INDEX}/"

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


#: Crockford base32 reads I and L as 1 and O as 0 (people copy ids by hand); U stays invalid.
_CROCKFORD_ALIASES = str.maketrans("ILO", "110")


def canonical_image_id(image_id: str) -> str:
    """An image id as stored: ULIDs are Crockford base32, which is case-insensitive and reads
    I, L as 1 and O as 0, so any such spelling is read as the canonical id. Raises
    :class:`LayoutError` for what is not an id (only ASCII is upper-cased: ``str.upper`` would
    turn some other letters, like U+017F the long s, into ids)."""
    if image_id.isascii() and _IMAGE_ID_RE.match(canonical := image_id.upper().translate(_CROCKFORD_ALIASES)):
        return canonical
    raise LayoutError(f"not an image id: {image_id!r}")  # as given, not upper-cased


def raw_image_key(dt: str, image_id: str) -> str:
    return f"{RAW_IMAGES}/dt={dt}/{check_image_id(image_id)}"


def raw_images_prefix(dt: str | None = None) -> str:
    return f"{RAW_IMAGES}/dt={dt}/" if dt else f"{RAW_IMAGES}/"


#: Every Parquet table of the lake and the folder it lives in (schemas: imagelake/lake/schemas.py).
TABLE_PREFIXES: dict[str, str] = {
    "upload_events": f"{RAW_EVENTS}/",
    "dead_letters": f"{RAW_DEAD_LETTERS}/",
    IMAGE_METADATA: f"{CURATED}/{IMAGE_METADATA}/",
    "derivatives": f"{CURATED}/derivatives/",
    "storage_inventory": f"{CURATED}/storage_inventory/",
}


#: Name prefix of the files compaction writes (every other table file is a batch file).
COMPACTED_PREFIX = "compacted-"


def table_prefix(table: str) -> str:
    """The folder of a batch-written table (``raw/events/`` for ``upload_events``)."""
    try:
        return TABLE_PREFIXES[table]
    except KeyError:
        raise LayoutError(f"unknown table {table!r}; known: {sorted(TABLE_PREFIXES)}") from None


def batch_file_key(table: str, dt: str, batch_id: str) -> str:
    """Where one batch's rows of one upload date live in a table."""
    return f"{table_prefix(table)}dt={dt}/{batch_id}.parquet"


def day_prefix(table: str, dt: str) -> str:
    """The folder of one upload date of a table."""
    return f"{table_prefix(table)}dt={dt}/"


def compacted_file_key(table: str, dt: str, digest: str, part: int) -> str:
    """One file of a compacted day; ``digest`` names the set of files it replaces."""
    return f"{day_prefix(table, dt)}{COMPACTED_PREFIX}{digest}-p{part:03d}.parquet"


def is_compacted_key(key: str) -> bool:
    return key.rsplit("/", 1)[-1].startswith(COMPACTED_PREFIX)


def hash_index_key(dt: str, name: str) -> str:
    """A file of the duplicate index: a batch's segment (``name`` = batch id) or a merge of them."""
    return f"{HASH_INDEX_PREFIX}dt={dt}/{name}.parquet"


def derivative_key(size: int, image_id: str, ext: str) -> str:
    return f"{DERIVATIVES}/{int(size)}/{check_image_id(image_id)}.{ext.lstrip('.')}"


def derivative_sizes_prefix() -> str:
    """The folder holding one sub-folder per derivative size."""
    return f"{DERIVATIVES}/"


#: The batch id of the storage listing the warehouse refresh writes, one file per listing day
#: (imagelake/warehouse/storage_listing.py): each refresh replaces it.
STORAGE_LISTING_ID = "refresh-listing"

#: Statistics snapshots the API serves (imagelake/stats/snapshot_files.py).
STATS_PREFIX = "serving/stats/"
STATS_MANIFEST = f"{STATS_PREFIX}manifest.json"


def stats_file_key(generation: str, table: str) -> str:
    """One table of one published statistics snapshot; a generation's files never change."""
    if not re.fullmatch(r"[0-9A-Za-z-]+", generation) or not re.fullmatch(r"[a-z_]+", table):
        raise LayoutError(f"not a statistics snapshot: {generation!r}/{table!r}")
    return f"{STATS_PREFIX}{generation}/{table}.parquet"


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


_RAW_IMAGE_KEY_RE = re.compile(rf"^{RAW_IMAGES}/dt=(\d{{4}}-\d{{2}}-\d{{2}})/([0-9A-HJKMNP-TV-Z]{{26}})$")
_DERIVATIVE_KEY_RE = re.compile(rf"^{DERIVATIVES}/(\d+)/([0-9A-HJKMNP-TV-Z]{{26}})\.(\w+)$")


def parse_raw_image_key(key: str) -> tuple[str, str] | None:
    """``(dt, image_id)`` of a raw image key, or ``None`` for anything else."""
    match = _RAW_IMAGE_KEY_RE.match(key)
    return (match.group(1), match.group(2)) if match else None


def parse_derivative_key(key: str) -> tuple[int, str, str] | None:
    """``(size, image_id, ext)`` of a derivative key, or ``None`` for anything else."""
    match = _DERIVATIVE_KEY_RE.match(key)
    return (int(match.group(1)), match.group(2), match.group(3)) if match else None
