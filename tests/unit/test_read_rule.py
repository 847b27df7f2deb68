"""The read rule has one owner (imagelake/lake/read_rule.py); its mirrors agree with it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from itertools import permutations

import duckdb
import pyarrow as pa
import pytest

from imagelake.lake.layout import IMAGE_METADATA
from imagelake.lake.read_rule import (
    IMAGE_ROW_ORDER,
    ROW_IDENTITY,
    ROW_PREFERENCE,
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


def test_staging_keeps_the_rules_row_of_each_batch_then_of_each_image():
    sql = normalised((STAGING / "stg_image_metadata.sql").read_text())
    clauses = re.findall(r"qualify row_number\(\) over \( partition by ([\w, ]+?) order by (.*?) \) = 1", sql)
    assert clauses == [
        (
            "upload_date, " + ", ".join(ROW_IDENTITY[IMAGE_METADATA]),
            order_sql(ROW_PREFERENCE[IMAGE_METADATA]),
        ),
        ("upload_date, image_id", order_sql(IMAGE_ROW_ORDER)),
    ]


def row(image: str, seconds: int, batch: str, original: str | None) -> dict:
    return {
        "image_id": image,
        "processed_at": T0 + timedelta(seconds=seconds),
        "batch_id": batch,
        "duplicate_of": original,
    }


def rows_with_ties() -> list[dict]:
    """Rows of one image that tie on the leading columns, so every column of the order decides once."""
    return [
        row("X", 1, "t-0-0-9", None),
        row("X", 0, "t-1-5-9", B),
        row("X", 0, "t-1-5-9", A),  # a correction keeps the row's processed_at, names an earlier original
        row("X", 9, "t-1-5-9", None),  # a re-run's copy from before re-runs kept processed_at
        row("X", 0, "t-2-0-9", C),
        row("Y", 0, "t-0-0-9", None),
    ]


@pytest.mark.parametrize("shuffle", range(6))
def test_python_and_sql_pick_the_same_row_per_image(shuffle: int):
    rows = list(list(permutations(rows_with_ties()))[shuffle * 97])
    python = {image: (r["batch_id"], r["duplicate_of"]) for image, r in first_per_image(rows).items()}
    candidates = pa.Table.from_pylist(rows)  # noqa: F841 (read by DuckDB below)
    per_batch = (
        "select * from candidates qualify row_number() over "
        f"(partition by batch_id, image_id order by {order_sql(ROW_PREFERENCE[IMAGE_METADATA])}) = 1"
    )
    picked = duckdb.sql(
        f"select image_id, batch_id, duplicate_of from ({per_batch}) qualify row_number() over "
        f"(partition by image_id order by {order_sql(IMAGE_ROW_ORDER)}) = 1"
    ).fetchall()
    assert python == {image: (batch, original) for image, batch, original in picked}
    # the first result's batch; of its copies, the correction, whatever its processed_at
    assert python["X"] == ("t-1-5-9", A)


def test_an_image_announced_twice_belongs_to_the_smallest_batch_by_offsets_not_by_spelling():
    assert owning_batch(["image-uploads-0-10-19", "image-uploads-0-9-9"]) == "image-uploads-0-9-9"
    assert owning_batch(["image-uploads-10-0-0", "image-uploads-2-0-0"]) == "image-uploads-2-0-0"


def test_an_original_only_moves_earlier():
    assert is_earlier_original(A, None)
    assert is_earlier_original(A, B)
    assert is_earlier_original(A, A)
    assert not is_earlier_original(C, B)
