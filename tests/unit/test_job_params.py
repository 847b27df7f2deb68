"""A Spark job's parameters survive the trip through Pipes extras (plain JSON) unchanged."""

import json

import pytest

from imagelake.batch.compaction import CompactParams
from imagelake.batch.day_derivatives import DeriveParams
from imagelake.batch.garbage_collection import GcParams

PARAMS = [
    CompactParams(lake_url="s3://lake", dt="2026-11-23", target_bytes=1 << 27, s3_endpoint="http://moto"),
    CompactParams(lake_url="file:///tmp/lake", dt="2026-11-23", target_bytes=1, tables=("image_metadata",)),
    DeriveParams(
        lake_url="s3://lake",
        dt="2026-11-24",
        sizes=(256, 1024),
        formats=("webp",),
        max_pixels=50_000_000,
        run_id="r1",
        catalog_table="images",
        force=True,
    ),
    GcParams(
        lake_url="s3://lake", retention_days=7, grace_hours=1.5, dry_run=True, now="2026-11-24T00:00:00+00:00"
    ),
]


@pytest.mark.parametrize("params", PARAMS, ids=lambda p: type(p).__name__)
def test_round_trip_through_json(params):
    extras = json.loads(json.dumps(params.to_extras()))
    assert type(params).from_extras(extras) == params
    assert params.lake().url == params.lake_url


def test_unknown_extras_are_ignored_and_defaults_fill_the_rest():
    params = CompactParams.from_extras(
        {"lake_url": "s3://lake", "dt": "2026-11-23", "target_bytes": 5, "x": 1}
    )
    assert params.tables == CompactParams(lake_url="s3://lake", dt="2026-11-23", target_bytes=5).tables
