"""Reading and writing the lake's batch-partitioned Parquet tables.

A batch writes one file per upload date it touches:
``<table prefix>/dt=<date>/<batch_id>.parquet``. Files are written whole and
atomically with deterministic bytes, so re-running a batch rewrites identical
files and a reader never sees half a file.
"""

from __future__ import annotations

import io
from collections import defaultdict
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from imagelake.lake import layout
from imagelake.lake.schemas import SCHEMAS
from imagelake.lake.store import Lake, ObjectInfo


@dataclass(frozen=True)
class WrittenFile:
    key: str
    rows: int
    size: int


def to_parquet_bytes(table: pa.Table) -> bytes:
    """Serialise with fixed options so equal tables give equal bytes."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", write_statistics=True, store_schema=True)
    return sink.getvalue()


def from_parquet_bytes(data: bytes) -> pa.Table:
    return pq.read_table(io.BytesIO(data))


def rows_to_table(table_name: str, rows: list[dict]) -> pa.Table:
    """Build a table with the documented schema (:mod:`imagelake.lake.schemas`)."""
    return pa.Table.from_pylist(rows, schema=SCHEMAS[table_name])


def write_batch_table(
    lake: Lake, table_name: str, batch_id: str, rows: list[dict], dts: list[str]
) -> list[WrittenFile]:
    """Write ``rows`` (with their upload dates ``dts``) as one file per date."""
    if len(rows) != len(dts):
        raise ValueError("one dt per row is required")
    by_dt: dict[str, list[dict]] = defaultdict(list)
    for row, dt in zip(rows, dts, strict=True):
        by_dt[dt].append(row)
    written: list[WrittenFile] = []
    for dt in sorted(by_dt):
        data = to_parquet_bytes(rows_to_table(table_name, by_dt[dt]))
        key = layout.batch_file_key(table_name, dt, batch_id)
        lake.put(key, data)
        written.append(WrittenFile(key, len(by_dt[dt]), len(data)))
    return written


def batch_file_keys(lake: Lake, table_name: str, batch_id: str) -> list[str]:
    """The existing files of one batch in a table, found through its ``dt=`` folders."""
    prefix = layout.table_prefix(table_name)
    keys = []
    for folder in lake.list_dirs(prefix):
        key = f"{folder}{batch_id}.parquet"
        if lake.exists(key):
            keys.append(key)
    return keys


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """A file's table in the documented schema: its columns in order, a column added later dropped."""
    return table.select(schema.names).cast(schema)


class CorruptLakeFile(ValueError):
    """A lake object that should be Parquet and is not: named, with what to do, because one
    such file stops every run that reads its day (or, in the hash index, its week)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(
            f"{key} in the lake is not a readable Parquet file ({reason}). Restore it from a backup "
            "or, if it cannot be restored, move it out of the lake (its rows are then lost until "
            "the batch that wrote it is re-run), then re-execute the failed run."
        )
        self.key = key


def read_lake_parquet(lake: Lake, key: str) -> pa.Table:
    """One Parquet object of the lake as it is stored; :class:`CorruptLakeFile` if it does not decode."""
    return _decoded(key, lake.get(key))


def _decoded(key: str, data: bytes) -> pa.Table:
    try:
        return from_parquet_bytes(data)
    except (pa.ArrowException, OSError) as exc:
        raise CorruptLakeFile(key, str(exc)) from None


def read_table_file(lake: Lake, table_name: str, key: str) -> pa.Table:
    """One Parquet file of a lake table, in the table's schema."""
    return conform(read_lake_parquet(lake, key), SCHEMAS[table_name])


def read_table_file_tagged(lake: Lake, table_name: str, key: str) -> tuple[pa.Table, str | None]:
    """:func:`read_table_file`, and the ETag of the bytes read (to delete exactly them later)."""
    data, e_tag = lake.get_tagged(key)
    return conform(_decoded(key, data), SCHEMAS[table_name]), e_tag


def day_files(lake: Lake, table_name: str, dt: str) -> list[ObjectInfo]:
    """The Parquet files of one day of a table, by key."""
    objects = lake.list(layout.day_prefix(table_name, dt))
    return sorted((o for o in objects if o.key.endswith(".parquet")), key=lambda o: o.key)


def read_batch_table(lake: Lake, table_name: str, batch_id: str) -> pa.Table:
    """All rows one batch wrote to a table (an empty table if it wrote none)."""
    tables = [read_table_file(lake, table_name, key) for key in batch_file_keys(lake, table_name, batch_id)]
    return pa.concat_tables(tables) if tables else SCHEMAS[table_name].empty_table()
