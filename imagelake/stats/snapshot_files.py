"""Statistics snapshots in the lake: what each warehouse build publishes and the API replicas read.

A snapshot is a *generation*: one Parquet file per served table under
``serving/stats/<generation>/``, written once and never changed, and a manifest,
``serving/stats/manifest.json``, that lists the newest generations (newest first) with each
file's SHA-256 and row count. Publishing writes the files, reads them back and checks them, and
only then replaces the manifest (an atomic put), so a reader never sees a generation half
written. A reader takes the newest generation whose files match their checksums and decode;
a damaged one is skipped for the one before it, which is why the manifest keeps a few.

This replaces the seed's Postgres copy fed by change data capture: the marts already are the
statistics, computed once per build; copying them into a database every replica queries adds a
service, a CDC pipeline and a second truth to keep in step, for a few thousand small rows
that fit in each replica's memory (docs/design.md, "Statistics").
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pyarrow as pa

from imagelake.lake import layout
from imagelake.lake.store import Lake, ObjectMissing
from imagelake.lake.tables import from_parquet_bytes, to_parquet_bytes

#: The served tables: snapshot file name -> the dbt model (schema ``serving``) it is taken from.
SERVED_TABLES: dict[str, str] = {
    "client_usage": "stats_client_usage",
    "service_daily": "stats_service_daily",
}
#: Generations the manifest lists: the newest, and older ones a reader falls back on if it is damaged.
KEPT_GENERATIONS = 3
#: A generation no longer listed is deleted only this long after it was published: a replica that
#: read the manifest just before may still be reading its files.
PRUNE_AFTER = timedelta(minutes=10)
MANIFEST_VERSION = 1


class SnapshotDamaged(ValueError):
    """A snapshot file (or the manifest) is missing, does not match its checksum, or does not decode."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"statistics snapshot {key} is damaged: {reason}")
        self.key = key
        self.reason = reason


@dataclass(frozen=True)
class SnapshotFile:
    key: str
    sha256: str
    rows: int
    bytes: int


@dataclass(frozen=True)
class Generation:
    id: str
    published_at: datetime
    files: Mapping[str, SnapshotFile]

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "published_at": self.published_at.isoformat(),
            "files": {name: vars(f) for name, f in self.files.items()},
        }

    @classmethod
    def from_json(cls, raw: Mapping) -> Generation:
        return cls(
            id=str(raw["id"]),
            published_at=datetime.fromisoformat(raw["published_at"]),
            files={name: SnapshotFile(**f) for name, f in raw["files"].items()},
        )


@dataclass(frozen=True)
class Manifest:
    generations: list[Generation] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        body = {"version": MANIFEST_VERSION, "generations": [g.to_json() for g in self.generations]}
        return json.dumps(body, indent=1, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        try:
            raw = json.loads(data)
            return cls([Generation.from_json(g) for g in raw["generations"]])
        except (ValueError, KeyError, TypeError) as exc:
            raise SnapshotDamaged(layout.STATS_MANIFEST, f"not a manifest ({exc})") from None


def read_manifest(lake: Lake) -> Manifest | None:
    """The manifest, or None before the first publication; :class:`SnapshotDamaged` if unreadable."""
    try:
        data = lake.get(layout.STATS_MANIFEST)
    except ObjectMissing:
        return None
    return Manifest.from_bytes(data)


def generation_id(now: datetime, tables: Mapping[str, pa.Table]) -> str:
    """Sortable by time, and distinct for distinct contents published in the same microsecond."""
    digest = hashlib.sha256()
    for name in sorted(tables):
        digest.update(name.encode())
        digest.update(str(tables[name].num_rows).encode())
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%S%fZ}-{digest.hexdigest()[:8]}"


def decode_file(key: str, data: bytes, expected: SnapshotFile) -> pa.Table:
    """A snapshot file's table, checked against what the manifest says of it."""
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected.sha256:
        raise SnapshotDamaged(
            key, f"SHA-256 {actual[:12]}… does not match the manifest's {expected.sha256[:12]}…"
        )
    try:
        table = from_parquet_bytes(data)
    except (pa.ArrowException, OSError) as exc:
        raise SnapshotDamaged(key, f"not readable Parquet ({exc})") from None
    if table.num_rows != expected.rows:
        raise SnapshotDamaged(key, f"{table.num_rows} rows, the manifest says {expected.rows}")
    return table


def load_generation(lake: Lake, generation: Generation) -> dict[str, pa.Table]:
    """Every table of a generation, each checked; :class:`SnapshotDamaged` names the first bad file."""
    missing = set(SERVED_TABLES) - set(generation.files)
    if missing:
        raise SnapshotDamaged(layout.STATS_MANIFEST, f"generation {generation.id} lacks {sorted(missing)}")
    tables = {}
    for name in SERVED_TABLES:
        expected = generation.files[name]
        try:
            data = lake.get(expected.key)
        except ObjectMissing:
            raise SnapshotDamaged(expected.key, "the file is missing") from None
        tables[name] = decode_file(expected.key, data, expected)
    return tables


def publish(lake: Lake, tables: Mapping[str, pa.Table], now: datetime) -> tuple[Generation, list[str]]:
    """Write a new generation, check it, make it current; returns it and the generations pruned.

    A file that does not read back as written raises :class:`SnapshotDamaged` before the manifest
    changes: readers keep the generation they have.
    """
    if set(tables) != set(SERVED_TABLES):
        raise ValueError(f"a snapshot holds exactly {sorted(SERVED_TABLES)}, got {sorted(tables)}")
    gen_id = generation_id(now, tables)
    files = {}
    for name, table in sorted(tables.items()):
        data = to_parquet_bytes(table)
        key = layout.stats_file_key(gen_id, name)
        lake.put(key, data)
        files[name] = SnapshotFile(key, hashlib.sha256(data).hexdigest(), table.num_rows, len(data))
    generation = Generation(gen_id, now, files)
    load_generation(lake, generation)  # read back what was written, before anyone is pointed at it
    try:
        previous = read_manifest(lake) or Manifest()
    except SnapshotDamaged:
        previous = Manifest()  # a damaged manifest is replaced; its generations are pruned in time
    current = Manifest([generation, *previous.generations][:KEPT_GENERATIONS])
    lake.put(layout.STATS_MANIFEST, current.to_bytes())
    return generation, prune(lake, current, now)


def prune(lake: Lake, manifest: Manifest, now: datetime) -> list[str]:
    """Delete generations the manifest no longer lists, once :data:`PRUNE_AFTER` has passed."""
    listed = {g.id for g in manifest.generations}
    pruned = []
    for folder in lake.list_dirs(layout.STATS_PREFIX):
        gen_id = folder.rstrip("/").rsplit("/", 1)[-1]
        if gen_id in listed:
            continue
        objects = list(lake.list(folder))
        if objects and all(now - o.last_modified >= PRUNE_AFTER for o in objects):
            for o in objects:
                lake.delete(o.key)
            pruned.append(gen_id)
    return pruned
