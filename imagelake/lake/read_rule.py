"""The exactly-once read rule, and which row of an image wins: the one owner of both.

**Reading a table.** Read every file of a table (``dt=*/*.parquet``) and keep one
row per :data:`ROW_IDENTITY`; where rows of one identity differ, keep the first
by :data:`ROW_PREFERENCE`. Copies of a row (in a batch file and in a compacted
file, or in two compacted generations) are identical or, for a duplicate
correction written beside a compacted file, differ only in the duplicate
columns, which the preference settles. A reader that follows the rule counts
every row exactly once before, during and after a compaction.

**One row per image.** An image announced twice (a redelivered event) is owned by
the smallest batch that saw it (:func:`owning_batch`); duplicate resolution drops
the others' rows. Until it has, a reader that wants one row per image applies the
read rule, then keeps each image's first result by :data:`IMAGE_ROW_ORDER`
(:func:`first_per_image`).

**Originals only move earlier.** ``duplicate_of`` names the earliest image a row
duplicates; as batches land, an answer can only move to an earlier image (image
ids sort by upload time), never later. The catalog's conditional update
(:meth:`imagelake.catalog.Catalog.record_outcome`) applies :func:`is_earlier_original`.

Mirrors, each tested against this module: :func:`exactly_once_sql` (DuckDB), and
the ``qualify`` clauses of dbt's staging models (tests/unit/test_read_rule.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

from imagelake.lake.layout import IMAGE_METADATA, BatchId, table_prefix

Order = tuple[tuple[str, str], ...]

#: The columns that identify one row of each table.
ROW_IDENTITY: dict[str, tuple[str, ...]] = {
    "upload_events": ("topic", "kafka_partition", "kafka_offset"),
    "dead_letters": ("topic", "kafka_partition", "kafka_offset"),
    IMAGE_METADATA: ("batch_id", "image_id"),
    "derivatives": ("image_id", "size", "format"),
    "storage_inventory": ("snapshot_at", "zone", "prefix", "data_date"),
}

#: Which of several rows with one identity a reader keeps: first by these (column, order) pairs,
#: nulls last. Of two copies of a metadata row, the one with the earliest ``duplicate_of`` (a
#: correction beside the stale compacted copy: answers only ever move earlier), whatever their
#: ``processed_at`` says; then the first result (a re-run keeps it, so copies agree). A derivative
#: row describes the newest write of its object.
ROW_PREFERENCE: dict[str, Order] = {
    IMAGE_METADATA: (("duplicate_of", "ascending"), ("processed_at", "ascending")),
    "derivatives": (("created_at", "descending"),),
}

#: Then one row per image of ``image_metadata``, whichever batches hold it: its first result.
IMAGE_ROW_ORDER: Order = (("processed_at", "ascending"), ("batch_id", "ascending"))


def order_sql(order: Order) -> str:
    """An ORDER BY list for ``order``, nulls last, as every SQL mirror spells it."""
    return ", ".join(f"{c} {'asc' if o == 'ascending' else 'desc'} nulls last" for c, o in order)


def _sort_key(order: Order):
    """A Python sort key for ``order`` with nulls last (a descending column must be numeric or a time)."""

    def key(row: Mapping[str, Any]) -> tuple:
        parts: list[Any] = []
        for column, direction in order:
            value = row.get(column)
            parts.append(value is None)
            if value is not None and direction == "descending":
                value = -value.timestamp() if hasattr(value, "timestamp") else -value
            parts.append(value)
        return tuple(parts)

    return key


def first_per_image(rows: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """``image_metadata`` rows, one per image id: the read rule's row of each (batch, image), then
    the first of those by :data:`IMAGE_ROW_ORDER`."""
    identity = ROW_IDENTITY[IMAGE_METADATA]
    per_identity: dict[tuple, Mapping[str, Any]] = {}
    for row in sorted(rows, key=_sort_key(ROW_PREFERENCE[IMAGE_METADATA])):
        per_identity.setdefault(tuple(row[c] for c in identity), row)
    first: dict[str, Mapping[str, Any]] = {}
    for row in sorted(per_identity.values(), key=_sort_key(IMAGE_ROW_ORDER)):
        first.setdefault(row["image_id"], row)
    return first


def owning_batch(batch_ids: Iterable[str]) -> str:
    """The batch an image announced in several batches belongs to: the smallest
    (topic, partition, offsets)."""
    return min(batch_ids, key=BatchId.parse)


def is_earlier_original(candidate: str, recorded: str | None) -> bool:
    """Whether ``candidate`` may replace the ``duplicate_of`` already recorded."""
    return recorded is None or candidate <= recorded


def exactly_once(table: pa.Table, table_name: str) -> pa.Table:
    """One row per identity (the read rule), ordered by identity: a deterministic table."""
    identity = list(ROW_IDENTITY[table_name])
    preference = list(ROW_PREFERENCE.get(table_name, ()))
    numbered = table.append_column("__row", pa.array(range(table.num_rows), pa.int64()))
    ordered = numbered.sort_by([(c, "ascending") for c in identity] + preference + [("__row", "ascending")])
    ordered = ordered.append_column("__pos", pa.array(range(ordered.num_rows), pa.int64()))
    firsts = ordered.group_by(identity, use_threads=False).aggregate([("__pos", "min")])
    kept = ordered.take(firsts["__pos_min"]).sort_by([(c, "ascending") for c in identity])
    return kept.drop_columns(["__row", "__pos"])


def exactly_once_sql(table_name: str, lake_root: str) -> str:
    """The read rule as a DuckDB query over every file of a table."""
    identity = ", ".join(ROW_IDENTITY[table_name])
    order = ", ".join(filter(None, [order_sql(ROW_PREFERENCE.get(table_name, ())), "filename"]))
    glob = f"{lake_root.rstrip('/')}/{table_prefix(table_name)}dt=*/*.parquet"
    return (
        "select * exclude (filename, __rank) from ("
        f" select *, row_number() over (partition by {identity} order by {order}) as __rank"
        f" from read_parquet('{glob}', union_by_name = true, filename = true)"
        ") where __rank = 1"
    )
