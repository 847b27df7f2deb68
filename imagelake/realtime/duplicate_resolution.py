"""Duplicate resolution that converges, however batches interleave.

Several batch runs (one per Kafka offset range) run at once, and a batch can
be late: its images may be earlier than images another batch has already
processed. The answer for an image (its ``duplicate_of``, see
:mod:`imagelake.realtime.hash_index`) depends only on the set of images in the index,
and only ever moves earlier as that set grows. Each run therefore:

1. writes its index segment *before* it reads the index, so of two batches
   running at once at least one sees the other (each writes, then reads);
2. computes its own rows from the index it read, and also recomputes the
   ``image_metadata`` files of other batches holding *later* images that its
   own images are earlier duplicates of (the run that sees a pair fixes both
   sides; a file not written yet is left to its own batch, which will see
   this segment);
3. after writing, lists the index again: if segments appeared that change
   what it wrote, it recomputes and rewrites, until a listing changes nothing.

So the last write of any file is computed from an index that holds every
segment written before that write, and a segment written after it is
written by a run that will itself fix the file. Re-runs recompute the same
answers from the same index, and rewrite identical bytes.
The catalog gets the same answers through conditional updates that only
ever move ``duplicate_of`` earlier (:meth:`imagelake.catalog.Catalog.record_duplicate`).
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from imagelake.lake import layout
from imagelake.lake.layout import IMAGE_METADATA
from imagelake.lake.schemas import SCHEMAS
from imagelake.lake.store import Lake, ObjectMissing
from imagelake.lake.tables import (
    WrittenFile,
    day_files,
    read_lake_parquet,
    read_table_file,
    rows_to_table,
    to_parquet_bytes,
)
from imagelake.realtime.hash_index import HashIndex, Match, match_hash, merge_day, write_segment

#: A run that keeps finding new relevant segments gives up after this many rounds (and fails).
MAX_ROUNDS = 50
#: Listings of a day's compacted files tried when a compaction swaps them mid-read.
FOLDED_READ_ATTEMPTS = 3


class ResolutionError(RuntimeError):
    """Duplicate resolution did not settle; re-running the batch resumes it."""


def normalise(rows: list[dict]) -> list[dict]:
    """Rows exactly as the ``image_metadata`` file holds them (float32 statistics, UTC timestamps)."""
    return rows_to_table(IMAGE_METADATA, rows).to_pylist() if rows else []


def with_match(row: dict, match: Match | None) -> dict:
    """A row with the duplicate columns of ``match`` (all null when there is none)."""
    return {
        **row,
        "duplicate_of": match.duplicate_of if match else None,
        "duplicate_kind": match.kind if match else None,
        "duplicate_distance": match.distance if match else None,
    }


def resolve_rows(index: HashIndex, rows: list[dict], threshold: int, window: timedelta) -> list[dict]:
    """A file's rows with duplicate columns from ``index``, without images another batch owns."""
    out = []
    for row in rows:
        owner = index.owner(row["image_id"])
        if owner is not None and owner != row["batch_id"]:
            continue  # delivered again: the smaller batch holds this image's row
        match = None
        if row["status"] == "processed" and (key := match_hash(row)) is not None:
            match = index.earliest_match(
                row["image_id"], row["uploaded_at"], key, row["sha256"], threshold, window
            )
        out.append(with_match(row, match))
    return out


def own_client_verdicts(index: HashIndex, rows: list[dict], threshold: int, window: timedelta) -> list[dict]:
    """Rows with the duplicate verdict a client may see: the earliest of its *own* images.

    The lake and the marts keep the verdict over every client (analysts count cross-client
    copies). The catalog, which the API answers from, gets this one: telling a client that
    its upload repeats another client's image, or hiding that it repeats its own because
    another client had it first, would tell it what someone else uploaded. It is the same
    search over a subset of the index, so it too only moves earlier as the index grows, and
    the catalog's "only earlier" update (Catalog.record_outcome) still converges.
    """
    out = []
    for row in rows:
        original, key = row.get("duplicate_of"), match_hash(row)
        if original is None or key is None or index.client_of(original) == row["client_id"]:
            out.append(row)
            continue
        match = index.earliest_match(
            row["image_id"],
            row["uploaded_at"],
            key,
            row["sha256"],
            threshold,
            window,
            client=row["client_id"],
        )
        out.append(with_match(row, match))
    return out


def metadata_key(batch_id: str, dt: str) -> str:
    return layout.batch_file_key(IMAGE_METADATA, dt, batch_id)


def _by_file(batch_id: str, rows: list[dict]) -> dict[str, list[dict]]:
    files: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        files[metadata_key(batch_id, layout.dt_of(row["uploaded_at"]))].append(row)
    return dict(sorted(files.items()))


def _affected_files(
    index: HashIndex, rows: list[dict], batch_id: str, threshold: int, window: timedelta
) -> set[tuple[str, str]]:
    """The (batch, day) files of other batches whose rows this batch's images change.

    Those holding later images this batch's images may be the original of, and
    those holding a second delivery of an image this batch owns.
    """
    files: set[tuple[str, str]] = set()
    for row in rows:
        if index.owner(row["image_id"]) != batch_id:
            continue
        dt = layout.dt_of(row["uploaded_at"])
        files.update((other, dt) for other in index.also_seen_by(row["image_id"]))
        if row["status"] != "processed" or (key := match_hash(row)) is None:
            continue
        for later in index.later_matches(row["image_id"], row["uploaded_at"], key, threshold, window):
            if later.batch_id != batch_id:
                files.add((later.batch_id, layout.dt_of(later.uploaded_at)))
    return files


def _compacted_rows(lake: Lake, dt: str) -> pa.Table:
    """Every row of one day's compacted ``image_metadata`` files."""
    for _ in range(FOLDED_READ_ATTEMPTS):
        keys = [f.key for f in day_files(lake, IMAGE_METADATA, dt) if layout.is_compacted_key(f.key)]
        try:
            tables = [read_table_file(lake, IMAGE_METADATA, k) for k in keys]
        except ObjectMissing:
            continue  # a newer compaction replaced the files between the listing and the read
        return pa.concat_tables(tables) if tables else SCHEMAS[IMAGE_METADATA].empty_table()
    raise ResolutionError(f"the compacted files of dt={dt} kept changing while being read; re-run the batch")


def _rows_of(lake: Lake, batch_id: str, dt: str, compacted: dict[str, pa.Table]) -> list[dict] | None:
    """Another batch's ``image_metadata`` rows of one day, to correct them; None if it wrote none yet.

    They are in the batch's file or, once compaction folded that file away, in
    the day's compacted files. A correction of folded rows is written as the
    batch's file again, beside the compacted ones: its rows share identity
    and ``processed_at`` with their compacted copies, and the read rule
    prefers the copy with the earliest ``duplicate_of``, the better-informed
    answer (:data:`imagelake.lake.read_rule.ROW_PREFERENCE`); the next compaction
    folds it in. ``compacted`` keeps each day's compacted rows for the run:
    one read per day, however many folded batches it corrects.
    """
    with contextlib.suppress(ObjectMissing):
        return read_lake_parquet(lake, metadata_key(batch_id, dt)).to_pylist()
    if dt not in compacted:
        compacted[dt] = _compacted_rows(lake, dt)
    day = compacted[dt]
    return day.filter(pc.equal(day["batch_id"], batch_id)).to_pylist() or None


def first_processed_at(lake: Lake, batch_id: str, dts: Iterable[str]) -> dict[str, datetime]:
    """When this batch first processed each of its images, from what an earlier run of it wrote.

    A re-run keeps those moments, so it rewrites identical rows, and its copy of a row never
    differs from a compacted copy but in a later correction (the read rule: one row per identity).
    The rows are in the batch's files or, once compaction folded them away, in the compacted files.
    """
    compacted: dict[str, pa.Table] = {}
    first: dict[str, datetime] = {}
    for dt in sorted(set(dts)):
        for row in _rows_of(lake, batch_id, dt, compacted) or []:
            first.setdefault(row["image_id"], row["processed_at"])
    return first


@dataclass
class Settlement:
    """What a batch's resolution wrote."""

    rows: list[dict]  # this batch's rows, as its files now hold them
    files: list[WrittenFile]  # this batch's image_metadata files
    index_files: list[WrittenFile]  # this batch's hash_index segments
    index: HashIndex = field(default_factory=HashIndex)  # the index as the run last read it
    corrected: list[dict] = field(default_factory=list)  # other batches' rows this run rewrote
    corrected_files: list[WrittenFile] = field(default_factory=list)  # other batches' files it rewrote
    merged_files: list[str] = field(default_factory=list)  # index files this run merged a day into
    rounds: int = 0
    load_s: float = 0.0
    search_s: float = 0.0

    @property
    def index_entries(self) -> int:
        return len(self.index)

    @property
    def index_segments(self) -> int:
        return len(self.index.keys)

    @property
    def duplicates(self) -> int:
        return sum(1 for r in self.rows if r["duplicate_of"])


def settle(lake: Lake, batch_id: str, rows: list[dict], *, threshold: int, window: timedelta) -> Settlement:
    """Index a batch's images, resolve duplicates and write ``image_metadata`` until it converges.

    ``rows`` are the batch's metadata rows (one per image, duplicate columns
    unset). Returns the rows as written plus the other batches' rows this run
    corrected, for the catalog.
    """
    rows = normalise(rows)
    index_files = write_segment(lake, batch_id, rows)
    if not rows:
        return Settlement([], [], index_files)
    since = layout.dt_of(min(r["uploaded_at"] for r in rows) - window)
    started = time.monotonic()
    index = HashIndex.load(lake, since)
    load_s = time.monotonic() - started
    search_s = 0.0
    own = _by_file(batch_id, rows)
    others: dict[str, list[dict]] = {}
    written: dict[str, list[dict]] = {}
    sizes: dict[str, int] = {}
    compacted: dict[str, pa.Table] = {}
    rounds = 0
    while True:
        rounds += 1
        if rounds > MAX_ROUNDS:
            raise ResolutionError(
                f"{batch_id}: duplicate resolution still changing after {MAX_ROUNDS} rounds; re-run the batch"
            )
        started = time.monotonic()
        for other, dt in _affected_files(index, rows, batch_id, threshold, window):
            key = metadata_key(other, dt)
            # A batch that wrote nothing yet is left alone: it will see this batch's segment.
            if key not in others and (found := _rows_of(lake, other, dt, compacted)) is not None:
                others[key] = found
        plans = {key: resolve_rows(index, src, threshold, window) for key, src in {**others, **own}.items()}
        search_s += time.monotonic() - started
        changed = False
        for key, new in plans.items():
            previous = written.get(key, None if key in own else others[key])
            if new == previous:
                continue
            data = to_parquet_bytes(rows_to_table(IMAGE_METADATA, new))
            lake.put(key, data)
            written[key], sizes[key] = new, len(data)
            changed = True
        if rounds > 1 and not changed:
            break
        started = time.monotonic()
        index, new_segments = index.refreshed(lake, since)
        load_s += time.monotonic() - started
        if not new_segments:
            break
    # Keep the index cheap to read: fold a crowded day's files into one (imagelake.realtime.hash_index).
    merged = [done for f in index_files if (done := merge_day(lake, layout.parse_dt(f.key).isoformat()))]
    final = [row for key in own for row in written[key]]
    corrected_keys = sorted(k for k in written if k not in own)
    return Settlement(
        rows=final,
        files=[WrittenFile(key, len(written[key]), sizes[key]) for key in own],
        index_files=index_files,
        index=index,
        corrected=[row for key in corrected_keys for row in written[key]],
        corrected_files=[WrittenFile(key, len(written[key]), sizes[key]) for key in corrected_keys],
        rounds=rounds,
        merged_files=merged,
        load_s=load_s,
        search_s=search_s,
    )
