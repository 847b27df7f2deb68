"""The read rule has one owner (imagelake/lake/read_rule.py); its mirrors agree with it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from itertools import permutations

import duckdb
import pyarrow as pa
import pytest

from imagelake.lake.read_rule import (
    IMAGE_ROW_ORDER,
    first_per_image,
    is_earlier_original,
    order_sql,
    owning_batch,
)
from imagelake.settings import PROJECT_ROOT

STAGING = PROJECT_ROOT / "dbt_project" / "models" / "staging"
T0 = datetime(2026, 11, 20, 12, tzinfo=UTC)
A, B, C = "01KAAAAAAAAAAAAAAAAAAAAAAA", "01KBBBBBBBBBBBBBBBBBBBBBBB", "01KCCCCCCCCCCCCCCCCCCCCCCC"


def normalised(sql: str) -> str:
    return re.sub(r"\s+", " ", sql).strip()


def test_staging_keeps_one_row_per_image_by_the_rules_image_order():
    sql = normalised((STAGING / "stg_image_metadata.sql").read_text())
    clause = re.search(
        r"qualify row_number\(\) over \( partition by upload_date, image_id order by (.*?) \) = 1", sql
    )
    assert clause, "stg_image_metadata keeps one row per image with a qualify clause"
    assert clause.group(1) == order_sql(IMAGE_ROW_ORDER)


def rows_with_ties() -> list[dict]:
    """Rows of one image that tie on the leading columns, so every column of the order decides once."""
    return [
        {
            "image_id": "X",
            "processed_at": T0 + timedelta(seconds=1),
            "batch_id": "t-0-0-9",
            "duplicate_of": None,
        },
        {"image_id": "X", "processed_at": T0, "batch_id": "t-1-5-9", "duplicate_of": B},
        {"image_id": "X", "processed_at": T0, "batch_id": "t-1-5-9", "duplicate_of": A},
        {"image_id": "X", "processed_at": T0, "batch_id": "t-1-5-9", "duplicate_of": None},
        {"image_id": "X", "processed_at": T0, "batch_id": "t-2-0-9", "duplicate_of": C},
        {"image_id": "Y", "processed_at": T0, "batch_id": "t-0-0-9", "duplicate_of": None},
    ]


@pytest.mark.parametrize("shuffle", range(6))
def test_python_and_sql_pick_the_same_row_per_image(shuffle: int):
    rows = list(list(permutations(rows_with_ties()))[shuffle * 97])
    python = {image: (r["batch_id"], r["duplicate_of"]) for image, r in first_per_image(rows).items()}
    candidates = pa.Table.from_pylist(rows)  # noqa: F841 (read by DuckDB below)
    picked = duckdb.sql(
        "select image_id, batch_id, duplicate_of from candidates qualify row_number() over "
        f"(partition by image_id order by {order_sql(IMAGE_ROW_ORDER)}) = 1"
    ).fetchall()
    assert python == {image: (batch, original) for image, batch, original in picked}
    assert python["X"] == ("t-1-5-9", A)  # the first result; of its copies, the earliest original


def test_an_image_announced_twice_belongs_to_the_smallest_batch_by_offsets_not_by_spelling():
    assert owning_batch(["image-uploads-0-10-19", "image-uploads-0-9-9"]) == "image-uploads-0-9-9"
    assert owning_batch(["image-uploads-10-0-0", "image-uploads-2-0-0"]) == "image-uploads-2-0-0"


def test_an_original_only_moves_earlier():
    assert is_earlier_original(A, None)
    assert is_earlier_original(A, B)
    assert is_earlier_original(A, A)
    assert not is_earlier_original(C, B)
