"""The lake on S3 (moto's S3 server over real HTTP) behaves like the local folder."""

import boto3
import pytest

from imagelake.lake.store import Lake, ObjectExists, ObjectMissing

pytestmark = pytest.mark.integration


@pytest.fixture
def s3_lake(moto_endpoint, monkeypatch, request):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    bucket = f"lake-{request.node.name.replace('_', '-')[:40]}".lower()
    boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=bucket)
    return Lake(f"s3://{bucket}/imagelake", s3_endpoint=moto_endpoint)


def test_put_get_head_list_delete(s3_lake):
    s3_lake.put("raw/images/dt=2026-11-24/A", b"abc")
    s3_lake.put("raw/images/dt=2026-11-25/B", b"defg")
    assert s3_lake.get("raw/images/dt=2026-11-24/A") == b"abc"
    assert s3_lake.head("raw/images/dt=2026-11-25/B").size == 4
    assert s3_lake.head("raw/images/dt=2026-11-25/nope") is None
    assert sorted(o.key for o in s3_lake.list("raw/images")) == [
        "raw/images/dt=2026-11-24/A",
        "raw/images/dt=2026-11-25/B",
    ]
    assert s3_lake.list_dirs("raw/images") == ["raw/images/dt=2026-11-24/", "raw/images/dt=2026-11-25/"]
    s3_lake.delete("raw/images/dt=2026-11-24/A")
    s3_lake.delete("raw/images/dt=2026-11-24/A")  # deleting twice is fine
    with pytest.raises(ObjectMissing):
        s3_lake.get("raw/images/dt=2026-11-24/A")
    assert s3_lake.uri("curated/x.parquet").startswith("s3://")


def test_create_only_put_refuses_to_overwrite(s3_lake):
    s3_lake.put("raw/images/dt=2026-11-24/C", b"first", create_only=True)
    with pytest.raises(ObjectExists):
        s3_lake.put("raw/images/dt=2026-11-24/C", b"second", create_only=True)
    assert s3_lake.get("raw/images/dt=2026-11-24/C") == b"first"


def test_keys_live_under_the_lake_prefix(s3_lake, moto_endpoint):
    s3_lake.put("curated/t/dt=2026-11-24/b.parquet", b"x")
    client = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    bucket = s3_lake.url.split("/")[2]
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["imagelake/curated/t/dt=2026-11-24/b.parquet"]


def test_bad_lake_urls_are_refused():
    for url in ("ftp://x/y", "s3://", "/just/a/path"):
        with pytest.raises(ValueError, match="lake url"):
            Lake(url)
