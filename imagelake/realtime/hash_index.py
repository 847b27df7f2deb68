"""The duplicate index: every image of the retention window, searched by perceptual hash.

The index lives in the lake under ``curated/hash_index/dt=<upload date>/``:
each real-time batch writes the images it has seen, failed ones included
(without a hash), as ``<batch_id>.parquet`` before it looks for duplicates, and
runs merge a day's files once there are more than ``MERGE_FAN_IN``. A run loads the window into a
:class:`HashIndex`: numpy arrays sorted by image id. Image ids are ULIDs, so
that order is upload order, and "earlier than X within the window" is one
contiguous slice found by binary search. A query is then one vectorised pass
over that slice (XOR, popcount, compare): no Python loop over stored hashes.

Definitions (the same for every run, whatever it sees first):

- X duplicates Y when Y is earlier than X (smaller image id), uploaded at
  most ``window`` before X, and their hashes differ in at most ``threshold``
  bits. Equal bytes give equal hashes, so an exact copy is always found.
- ``duplicate_of`` is the earliest such Y; ``kind`` is ``exact`` when the
  sha256 are equal, else ``near``; ``distance`` is the Hamming distance.
- An image delivered in two batches belongs to the smallest batch (topic,
  partition, offsets: :func:`imagelake.lake.read_rule.owning_batch`); the other
  batch keeps no row for it.

How concurrent and late batches converge on these answers:
:mod:`imagelake.realtime.duplicate_resolution`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from imagelake.images.phash import distances, from_hex
from imagelake.lake import layout
from imagelake.lake.ids import new_image_id
from imagelake.lake.read_rule import owning_batch
from imagelake.lake.schemas import HASH_INDEX as HASH_INDEX_SCHEMA
from imagelake.lake.store import Lake, ObjectMissing
from imagelake.lake.tables import WrittenFile, conform, read_lake_parquet, to_parquet_bytes

_ID_LEN = 26
_SIGN = 1 << 63
#: A day's index files are merged into one once there are more than this many.
MERGE_FAN_IN = 32
#: Name prefix of merged index files (the others are named after their batch).
MERGED_PREFIX = "merged-"
#: How often a reader re-lists when files vanish under it before it gives up.
MAX_LISTINGS = 20
#: Below this standard deviation of luma (grey levels, ``image_metadata.contrast``) an image
#: is flat and its perceptual hash says nothing (see :func:`match_hash`).
FLAT_CONTRAST = 1.0


@dataclass(frozen=True)
class Match:
    """The earliest image an image duplicates."""

    duplicate_of: str
    kind: str  # exact | near
    distance: int


@dataclass(frozen=True)
class Later:
    """A later image that an image is a duplicate candidate for."""

    image_id: str
    batch_id: str
    uploaded_at: datetime


def to_signed(value: int) -> int:
    """A 64-bit hash as the signed integer the Parquet column holds."""
    return value - (1 << 64) if value >= _SIGN else value


def match_hash(row: Mapping[str, Any]) -> int | None:
    """The hash an ``image_metadata`` row is searched and matched by; None without a pHash.

    That is its perceptual hash, except for a flat image (luma standard deviation
    under ``FLAT_CONTRAST``: one colour, blank, fully transparent). Its pHash bits
    are rounding noise around an all-zero spectrum, so every flat image would
    "nearly" duplicate every other whatever its colour. It is matched instead by
    64 bits of its sha256: an exact copy still finds it (distance 0), and another
    image matches it by chance with odds of about 1 in 10^11.
    """
    if not row.get("phash"):
        return None
    contrast, sha256 = row.get("contrast"), row.get("sha256")
    if contrast is not None and contrast < FLAT_CONTRAST and sha256:
        return int.from_bytes(bytes.fromhex(sha256)[:8], "big")
    return from_hex(row["phash"])


def index_rows(rows: Iterable[dict]) -> list[dict]:
    """The ``hash_index`` rows for a batch's ``image_metadata`` rows."""
    return [
        {
            "image_id": r["image_id"],
            "client_id": r["client_id"],
            "uploaded_at": r["uploaded_at"],
            "sha256": r["sha256"] if r["status"] == "processed" else None,
            "phash": None if (h := match_hash(r)) is None else to_signed(h),
            "batch_id": r["batch_id"],
        }
        for r in rows
    ]


def write_segment(lake: Lake, batch_id: str, rows: list[dict]) -> list[WrittenFile]:
    """Write a batch's index segment(s): one file per upload date, keyed by the batch id."""
    by_dt: dict[str, list[dict]] = {}
    for entry in index_rows(rows):
        by_dt.setdefault(layout.dt_of(entry["uploaded_at"]), []).append(entry)
    written = []
    for dt, entries in sorted(by_dt.items()):
        data = to_parquet_bytes(pa.Table.from_pylist(entries, schema=HASH_INDEX_SCHEMA))
        key = layout.hash_index_key(dt, batch_id)
        lake.put(key, data)
        written.append(WrittenFile(key, len(entries), len(data)))
    return written


def segment_keys(lake: Lake, since_dt: str) -> set[str]:
    """The index files of upload dates from ``since_dt`` on (one listing)."""
    keys = set()
    for info in lake.list(layout.HASH_INDEX_PREFIX):
        if info.key.endswith(".parquet") and layout.parse_dt(info.key).isoformat() >= since_dt:
            keys.add(info.key)
    return keys


def _read_files(lake: Lake, keys: Iterable[str]) -> tuple[dict[str, pa.Table], set[str]]:
    """Read index files in parallel: the tables, and the keys that were gone (merged or expired)."""

    def read(key: str) -> tuple[str, pa.Table | None]:
        try:
            return key, read_lake_parquet(lake, key)
        except ObjectMissing:
            return key, None

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(read, sorted(keys)))
    return {k: t for k, t in results if t is not None}, {k for k, t in results if t is None}


def read_window(lake: Lake, since_dt: str, known: Iterable[str] = ()) -> dict[str, pa.Table]:
    """Every index file of the window not in ``known``, as one consistent snapshot.

    A file can vanish between the listing and the read when a run merges it
    away. Mergers write the merged file before deleting what it replaces, so a
    fresh listing then holds the merged file: list again until nothing read
    was missing, and no entry written before the first listing is lost.
    """
    known = set(known)
    tables: dict[str, pa.Table] = {}
    for _ in range(MAX_LISTINGS):
        found, missing = _read_files(lake, segment_keys(lake, since_dt) - known - tables.keys())
        tables.update(found)
        if not missing:
            return tables
    raise RuntimeError(f"the duplicate index kept changing under {MAX_LISTINGS} listings; re-run the batch")


def merge_day(lake: Lake, dt: str, fan_in: int = MERGE_FAN_IN) -> str | None:
    """Merge a day's index files into one once there are more than ``fan_in`` of them.

    Every batch adds a file, so a busy day would otherwise cost every run
    thousands of reads. The merged file is written before the files it
    replaces are deleted (readers re-list, see :func:`read_window`); two runs
    merging at once write two files holding the same entries, which readers
    de-duplicate and the next merge folds. Returns the merged file's key.
    """
    prefix = f"{layout.HASH_INDEX_PREFIX}dt={dt}/"
    keys = {i.key for i in lake.list(prefix) if i.key.endswith(".parquet")}
    if len(keys) <= fan_in:
        return None
    tables, _gone = _read_files(lake, keys)
    if not tables:
        return None
    merged = pa.concat_tables([conform(t, HASH_INDEX_SCHEMA) for t in tables.values()])
    merged = merged.sort_by([("image_id", "ascending"), ("batch_id", "ascending")])
    ids, batches = merged.column("image_id").to_pylist(), merged.column("batch_id").to_pylist()
    keep = [i == 0 or (ids[i], batches[i]) != (ids[i - 1], batches[i - 1]) for i in range(len(ids))]
    merged = merged.filter(pa.array(keep))
    digest = hashlib.sha256("\n".join(sorted(tables)).encode()).hexdigest()[:16]
    key = layout.hash_index_key(dt, f"{MERGED_PREFIX}{digest}")
    lake.put(key, to_parquet_bytes(merged))
    for old in tables:
        if old != key:
            lake.delete(old)
    return key


def _fixed_ids(column: pa.ChunkedArray) -> np.ndarray:
    """Image ids as a numpy ``S26`` array, straight from the Arrow buffers (no Python strings)."""
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    n = len(array)
    if n == 0:
        return np.empty(0, dtype=f"S{_ID_LEN}")
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int32)[array.offset : array.offset + n + 1]
    if offsets[-1] - offsets[0] != _ID_LEN * n:
        raise ValueError("hash_index holds an image id that is not 26 characters")
    return np.frombuffer(array.buffers()[2], dtype=f"S{_ID_LEN}", count=n, offset=int(offsets[0]))


def _id_bound(moment: datetime, last: bool) -> bytes:
    """The smallest (or largest) image id of a millisecond, for binary search."""
    ms = min(max(int(moment.timestamp() * 1000), 0), (1 << 48) - 1)
    return new_image_id(ms, (b"\xff" if last else b"\x00") * 10).encode()


def _micros(moment: datetime) -> int:
    return int((moment - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))


@dataclass
class HashIndex:
    """The index as one run sees it: the files it read, and arrays sorted by image id."""

    tables: dict[str, pa.Table] = field(default_factory=dict)

    def __post_init__(self) -> None:
        schema = HASH_INDEX_SCHEMA
        parts = [conform(t, schema) for t in self.tables.values()]
        table = pa.concat_tables(parts) if parts else schema.empty_table()
        ids = _fixed_ids(table.column("image_id"))
        order = np.argsort(ids, kind="stable")
        table = table.take(pa.array(order))
        ids = ids[order]
        batches = pc.dictionary_encode(table.column("batch_id")).combine_chunks()
        batch_codes = batches.indices.to_numpy(zero_copy_only=False)
        self._batch_names: list[str] = batches.dictionary.to_pylist()
        keep = self._owners(ids, batch_codes)
        if keep is not None:
            table, ids, batch_codes = table.filter(pa.array(keep)), ids[keep], batch_codes[keep]
        self.ids = ids
        self._batch_codes = batch_codes
        self.micros = table.column("uploaded_at").cast(pa.int64()).to_numpy()
        phash = table.column("phash")
        self.hashed = phash.is_valid().to_numpy(zero_copy_only=False)
        self.hashes = phash.fill_null(0).to_numpy().view(np.uint64)
        self._sha = table.column("sha256")
        clients = pc.dictionary_encode(table.column("client_id").fill_null("")).combine_chunks()
        self._client_names: list[str] = clients.dictionary.to_pylist()
        self._client_codes = clients.indices.to_numpy(zero_copy_only=False)

    def _owners(self, ids: np.ndarray, codes: np.ndarray) -> np.ndarray | None:
        """Where an image was seen by several batches, keep only the smallest batch's entry.

        The other batches are remembered (:meth:`also_seen_by`): their rows for
        the image are dropped by whoever sees both.
        """
        self._also_seen: dict[str, list[str]] = {}
        repeated = np.flatnonzero(ids[1:] == ids[:-1])
        if repeated.size == 0:
            return None
        keep = np.ones(len(ids), dtype=bool)
        for start in np.unique(np.concatenate([repeated, repeated + 1])):
            keep[start] = False
        for image_id in np.unique(ids[repeated]):
            lo, hi = np.searchsorted(ids, image_id, "left"), np.searchsorted(ids, image_id, "right")
            seen = {self._batch_names[codes[i]]: i for i in range(hi - 1, lo - 1, -1)}  # first entry each
            owner = owning_batch(seen)
            keep[seen[owner]] = True
            self._also_seen[image_id.decode()] = sorted(set(seen) - {owner})
        return keep

    # -- loading ----------------------------------------------------------------
    @classmethod
    def load(cls, lake: Lake, since_dt: str) -> HashIndex:
        return cls(read_window(lake, since_dt))

    def refreshed(self, lake: Lake, since_dt: str) -> tuple[HashIndex, set[str]]:
        """The index with the files written since this one was read, and their keys."""
        new = read_window(lake, since_dt, known=self.tables.keys())
        if not new:
            return self, set()
        return HashIndex({**self.tables, **new}), set(new)

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(self.tables)

    def __len__(self) -> int:
        return len(self.ids)

    # -- lookups ----------------------------------------------------------------
    def _position(self, image_id: str) -> int | None:
        key = image_id.encode()
        pos = int(np.searchsorted(self.ids, key, "left"))
        return pos if pos < len(self.ids) and self.ids[pos] == key else None

    def owner(self, image_id: str) -> str | None:
        """The batch an image belongs to (the smallest that saw it), if the index has it."""
        pos = self._position(image_id)
        return None if pos is None else self._batch_names[self._batch_codes[pos]]

    def also_seen_by(self, image_id: str) -> list[str]:
        """Batches other than the owner that received the same image (a redelivered event)."""
        return [b for b in self._also_seen.get(image_id, []) if b != self.owner(image_id)]

    def client_of(self, image_id: str) -> str | None:
        """The client that uploaded an indexed image."""
        pos = self._position(image_id)
        return None if pos is None else self._client_names[self._client_codes[pos]]

    def earliest_match(
        self,
        image_id: str,
        uploaded_at: datetime,
        phash: int,
        sha256: str,
        threshold: int,
        window: timedelta,
        client: str | None = None,
    ) -> Match | None:
        """The earliest indexed image that ``image_id`` duplicates, or ``None``; with ``client``,
        the earliest among that client's own images (what the client may be told)."""
        lo = int(np.searchsorted(self.ids, _id_bound(uploaded_at - window, last=False), "left"))
        hi = int(np.searchsorted(self.ids, image_id.encode(), "left"))
        if hi <= lo:
            return None
        dist = distances(self.hashes[lo:hi], phash)
        hit = (dist <= threshold) & self.hashed[lo:hi] & (self.micros[lo:hi] >= _micros(uploaded_at - window))
        if client is not None:
            if client not in self._client_names:
                return None
            hit &= self._client_codes[lo:hi] == self._client_names.index(client)
        first = int(hit.argmax())
        if not hit[first]:
            return None
        pos = lo + first
        kind = "exact" if self._sha[pos].as_py() == sha256 else "near"
        return Match(self.ids[pos].decode(), kind, int(dist[first]))

    def later_matches(
        self, image_id: str, uploaded_at: datetime, phash: int, threshold: int, window: timedelta
    ) -> list[Later]:
        """Indexed images after ``image_id`` (within the window) that it could be the original of."""
        lo = int(np.searchsorted(self.ids, image_id.encode(), "right"))
        hi = int(np.searchsorted(self.ids, _id_bound(uploaded_at + window, last=True), "right"))
        if hi <= lo:
            return []
        hit = (
            (distances(self.hashes[lo:hi], phash) <= threshold)
            & self.hashed[lo:hi]
            & (self.micros[lo:hi] <= _micros(uploaded_at + window))
        )
        return [
            Later(
                self.ids[p].decode(),
                self._batch_names[self._batch_codes[p]],
                datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(self.micros[p])),
            )
            for p in (lo + np.flatnonzero(hit)).tolist()
        ]
