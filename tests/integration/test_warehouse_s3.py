"""The marts built by DuckDB over the lake on S3 (moto), as the production-mode stack builds them.

Redshift cannot run here; DuckDB reading the same Parquet files through its
httpfs extension (the package from PyPI, loaded from a file, never downloaded)
is its stand-in. The same generated days are written to an S3 lake and to a
folder: the marts built from S3 must equal what the independent oracle reads
from the folder.
"""

from datetime import UTC, datetime, timedelta

import boto3
import dagster as dg
import pytest

from imagelake.lake.store import Lake
from imagelake.settings import get_settings
from imagelake.warehouse.days import DayWindow
from imagelake.warehouse.duckdb_s3 import HttpfsUnavailable, duckdb_s3_env, httpfs_extension
from tests.support import lake_data
from tests.support.lake_data import DayShape
from tests.support.warehouse_builds import assert_marts_match_lake, build, query

pytestmark = pytest.mark.integration

TODAY = datetime.now(UTC).date()
DAYS = lake_data.days_back(TODAY, 2)
SHAPE = DayShape(
    images=150, seed=11, clients=5, batch_size=40, redelivered_share=0.03, dead_letter_share=0.02
)


def test_marts_built_from_the_lake_on_s3_match_the_curated_data(tmp_path, moto_endpoint, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    bucket = "warehouse-s3-lake"
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    for name, value in {
        "IMAGELAKE_ENV": "local",
        "IMAGELAKE_DATA_DIR": str(tmp_path / "data"),
        "IMAGELAKE_LAKE_URL": f"s3://{bucket}/lake",
        "IMAGELAKE_S3_ENDPOINT": moto_endpoint,
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    settings = get_settings()
    s3_lake, folder = Lake.from_settings(settings), Lake((tmp_path / "folder").as_uri())
    generated = [lake_data.generate_day(day, SHAPE) for day in DAYS]
    for lake in (s3_lake, folder):
        for g in generated:
            lake_data.write_day(lake, g)
        for g in generated:
            lake_data.write_inventory(
                lake, datetime.combine(g.day, datetime.min.time(), UTC) + timedelta(hours=23), generated
            )
    env = settings.dbt_env()
    assert env["IMAGELAKE_LAKE_ROOT"] == f"s3://{bucket}/lake"
    assert str(httpfs_extension()) in env["IMAGELAKE_DUCKDB_EXTENSIONS"]

    with dg.instance_for_test() as instance:
        result = build(settings, instance, DayWindow(DAYS[0], DAYS[-1]))
    get_settings.cache_clear()
    assert result.success
    assert query(settings, "select sum(images) from marts.daily_upload_stats") == [(2 * SHAPE.images,)]
    assert_marts_match_lake(settings, tmp_path / "folder")


def test_a_folder_lake_needs_no_extension(tmp_path):
    from imagelake.settings import load_settings

    env = load_settings({"IMAGELAKE_DATA_DIR": str(tmp_path)}).dbt_env()
    assert "IMAGELAKE_DUCKDB_EXTENSIONS" not in env and "IMAGELAKE_DUCKDB_SECRETS" not in env


def test_an_extension_for_another_duckdb_is_refused_with_what_to_do(monkeypatch, tmp_path):
    import duckdb

    monkeypatch.setattr(duckdb, "__version__", "9.9.9")
    from imagelake.settings import load_settings

    settings = load_settings(
        {"IMAGELAKE_DATA_DIR": str(tmp_path), "IMAGELAKE_LAKE_URL": "s3://b/l", "AWS_ACCESS_KEY_ID": "x"}
    )
    with pytest.raises(HttpfsUnavailable, match=r"no extension for DuckDB 9\.9\.9.*pin duckdb"):
        duckdb_s3_env(settings)
