"""Storage reorganisation: the many small batch files of a closed day become one (or a few) files.

The swap is safe for readers that follow the exactly-once read rule
(:mod:`imagelake.lake.read_rule`): the compacted files are written and verified
(read back, compared row for row with what they replace) before any file
they replace is deleted, so every row is in at least one live file at every
moment, and copies are identical (or one is a duplicate correction, which the
read rule prefers: :mod:`imagelake.lake.read_rule`).

- Re-running compaction of a compacted day finds one generation of compacted
  files and nothing else: it does nothing.
- A late event for a compacted day lands in a new batch file beside the
  compacted one; the next compaction folds both into a new generation.
- A file written after the listing (a batch re-run, a late batch) is never
  deleted: only the listed files go, and each only by a conditional delete of
  the very bytes compaction read (its ETag: S3's ``If-Match``, locally an atomic
  rename-aside and check, :meth:`imagelake.lake.store.Lake.delete_if_unchanged`).
  A file rewritten since, even within the same second and at the same size, stays.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date

import pyarrow as pa

from imagelake.batch.job_params import JobParams
from imagelake.lake import layout
from imagelake.lake.read_rule import exactly_once
from imagelake.lake.store import Lake, ObjectInfo
from imagelake.lake.tables import day_files, read_table_file, read_table_file_tagged, to_parquet_bytes

#: Tables compaction reorganises: every batch-written table of the lake.
COMPACTED_TABLES: tuple[str, ...] = tuple(layout.TABLE_PREFIXES)


@dataclass(frozen=True)
class CompactParams(JobParams):
    """One compaction run (one closed day, every table); travels to Spark as Pipes extras."""

    lake_url: str
    dt: str
    target_bytes: int
    s3_endpoint: str = ""
    region: str = "us-east-1"
    tables: tuple[str, ...] = COMPACTED_TABLES

    def __post_init__(self) -> None:
        layout.parse_dt(f"dt={self.dt}")


class CompactionError(RuntimeError):
    """The compacted files did not read back equal to their sources; nothing was deleted."""


@dataclass(frozen=True)
class DayResult:
    """What compaction did to one day of one table."""

    table: str
    dt: str
    status: str  # compacted | unchanged | open_day
    source_files: int = 0
    source_rows: int = 0
    rows: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    written: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    kept: list[str] = field(
        default_factory=list
    )  # listed files changed since the listing: left for next time

    def to_dict(self) -> dict:
        return asdict(self)


def generation_digest(keys: list[str]) -> str:
    """Names a compacted generation after the files it replaces: same inputs, same names."""
    return hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:16]


def is_compacted_generation(files: list[ObjectInfo]) -> bool:
    """True when a day already is one generation of compacted files and nothing else."""
    if not files or not all(layout.is_compacted_key(f.key) for f in files):
        return False
    digests = {f.key.rsplit("/", 1)[-1].rsplit("-p", 1)[0] for f in files}
    return len(digests) == 1


def _split(table: pa.Table, parts: int) -> list[pa.Table]:
    per_part = math.ceil(table.num_rows / parts) if table.num_rows else 0
    if parts <= 1 or per_part == 0:
        return [table]
    return [table.slice(start, per_part) for start in range(0, table.num_rows, per_part)]


def is_open_day(dt: str, today: date) -> bool:
    """Uploads may still land on ``dt``: today (UTC) or later, so not yet compacted."""
    return date.fromisoformat(dt) >= today


def compact_day(
    lake: Lake,
    table_name: str,
    dt: str,
    *,
    target_bytes: int,
    today: date,
    after_verify: Callable[[list[str]], None] | None = None,
) -> DayResult:
    """Compact one closed day of one table; ``after_verify`` runs between the write and the deletes."""
    if is_open_day(dt, today):
        return DayResult(table_name, dt, "open_day")
    files = day_files(lake, table_name, dt)
    before = sum(f.size for f in files)
    if len(files) <= 1 or is_compacted_generation(files):
        return DayResult(table_name, dt, "unchanged", len(files), bytes_before=before, bytes_after=before)

    read = [read_table_file_tagged(lake, table_name, f.key) for f in files]
    combined = pa.concat_tables([table for table, _ in read])
    read_tags = {f.key: e_tag for f, (_, e_tag) in zip(files, read, strict=True)}
    rows = exactly_once(combined, table_name)
    digest = generation_digest([f.key for f in files])
    parts = max(1, math.ceil(before / target_bytes))
    written: list[str] = []
    for part, chunk in enumerate(_split(rows, parts)):
        key = layout.compacted_file_key(table_name, dt, digest, part)
        lake.put(key, to_parquet_bytes(chunk))
        written.append(key)

    read_back = pa.concat_tables([read_table_file(lake, table_name, key) for key in written])
    if not read_back.equals(rows):
        for key in written:
            lake.delete(key)
        raise CompactionError(
            f"{table_name} dt={dt}: compacted files read back {read_back.num_rows} rows that differ from "
            f"the {rows.num_rows} rows of {len(files)} source files; sources kept, compacted files removed"
        )
    if after_verify is not None:
        after_verify(written)

    # Only the bytes that were compacted go: a file rewritten since it was read (a duplicate
    # correction, a re-run) fails the conditional delete and stays for the next compaction.
    deleted, kept = [], []
    for f in files:
        if f.key in written:
            continue
        e_tag = read_tags[f.key]
        if e_tag is None or not lake.delete_if_unchanged(f.key, e_tag):
            kept.append(f.key)
            continue
        deleted.append(f.key)
    after = sum(o.size for o in lake.list(layout.day_prefix(table_name, dt)))
    return DayResult(
        table_name,
        dt,
        "compacted",
        source_files=len(files),
        source_rows=combined.num_rows,
        rows=rows.num_rows,
        bytes_before=before,
        bytes_after=after,
        written=written,
        deleted=deleted,
        kept=kept,
    )


def days_to_compact(lake: Lake, table_name: str, *, today: date, oldest: date) -> list[str]:
    """Closed days within retention whose folder holds more than one generation of files."""
    days = []
    for folder in lake.list_dirs(layout.table_prefix(table_name)):
        try:
            day = layout.parse_dt(folder)
        except layout.LayoutError:
            continue
        if not oldest <= day < today:
            continue
        files = [o for o in lake.list(folder) if o.key.endswith(".parquet")]
        if len(files) > 1 and not is_compacted_generation(files):
            days.append(day.isoformat())
    return sorted(days)
