"""The whole product as `make dev` runs it: upload over HTTP, count in the mart.

Starts `python -m infra.local.dev` (Kafka, DynamoDB Local, the upload API and
`dagster dev`) on free ports in a temp dir, uploads 20 images (two of them
identical), waits for the sensor-launched runs and the automatic dbt refresh,
checks every upload's catalog entry (processed, its size, the copy pointing to
the original), the statistics endpoints (the client's usage, the operator's view),
/metrics and today's storage row, then stops it the way a user does (Ctrl-C) and
checks nothing is left running.
"""

import time
from collections import Counter

import duckdb
import httpx
import pyarrow.parquet as pq
import pytest

from imagelake.lake.ids import image_id_time
from infra.local.stack import port_in_use
from tests.support import sample_images as images
from tests.support.dev_stack import DevStack

pytestmark = pytest.mark.e2e
DEADLINE_S = 240


def mart_rows(warehouse) -> list[tuple] | None:
    if not warehouse.exists():
        return None
    try:
        with duckdb.connect(str(warehouse), read_only=True) as con:
            return con.execute("select upload_date, images from marts.daily_upload_stats").fetchall()
    except duckdb.Error:  # not built yet, or dbt holds the write lock right now
        return None


def storage_rows(warehouse, day) -> dict[str, int] | None:
    try:
        with duckdb.connect(str(warehouse), read_only=True) as con:
            sql = "select zone, objects from marts.storage_usage_daily where usage_date = ?"
            return dict(con.execute(sql, [day]).fetchall())
    except duckdb.Error:  # dbt holds the write lock right now
        return None


def test_upload_to_mart_on_the_local_stack(tmp_path):
    stack = DevStack.on_free_ports(tmp_path)
    api = stack.api
    try:
        stack.start()
        bodies = [images.jpeg(96, 64, seed=i) for i in range(19)]
        bodies.append(bodies[0])  # two identical uploads
        sha256s = set()
        ids = []
        with httpx.Client(base_url=api, timeout=30) as client:
            for i, body in enumerate(bodies):
                response = client.post(
                    "/v1/images",
                    headers={"X-API-Key": "dev-key"},
                    files={"file": (f"img{i}.jpg", body, "image/jpeg")},
                )
                assert response.status_code == 202, response.text
                sha256s.add(response.json()["sha256"])
                ids.append(response.json()["image_id"])
        assert len(sha256s) == 19
        # The upload days, from the ids (a ULID holds its upload time): two if midnight fell in between.
        per_day = sorted(Counter(image_id_time(i).date() for i in ids).items())

        warehouse = stack.data_dir / "warehouse.duckdb"
        stack.wait_for(
            lambda: sorted(mart_rows(warehouse) or []) == per_day,
            DEADLINE_S,
            "20 uploads in marts.daily_upload_stats",
        )
        curated = pq.read_table(stack.data_dir / "lake" / "curated" / "image_metadata").to_pylist()
        assert {r["sha256"] for r in curated} == sha256s
        assert len(curated) == 20 and {r["status"] for r in curated} == {"processed"}

        # The catalog tells each uploader what became of the image (GET /v1/images/{id}).
        with httpx.Client(base_url=api, timeout=30, headers={"X-API-Key": "dev-key"}) as client:
            items = [client.get(f"/v1/images/{image_id}").json() for image_id in ids]
        assert [i["status"] for i in items] == ["processed"] * 20, [i.get("error") for i in items]
        assert {
            (i["metadata"]["format"], i["metadata"]["width"], i["metadata"]["height"]) for i in items
        } == {("JPEG", 96, 64)}
        assert items[0]["duplicate"] is None  # the first upload is the original
        assert items[19]["duplicate"] == {"of": ids[0], "kind": "exact", "distance": 0}
        assert httpx.get(f"{stack.ui}/server_info", timeout=10).status_code == 200

        # The statistics: the client's own usage and the operator's view, from the snapshot the
        # refresh published (within a refresh and a poll of the marts above).
        first_day = per_day[0][0].isoformat()
        with httpx.Client(base_url=api, timeout=30) as client:

            def usage() -> dict:
                return client.get(
                    "/v1/stats/usage", headers={"X-API-Key": "dev-key"}, params={"from": first_day}
                ).json()

            stack.wait_for(lambda: usage()["totals"]["uploads"] == 20, 60, "20 uploads in /v1/stats/usage")
            assert usage()["totals"]["duplicates"] == 1 and usage()["client_id"] == "dev"
            service = client.get(
                "/v1/stats/service", headers={"X-API-Key": "dev-operator-key"}, params={"from": first_day}
            ).json()
            assert sum(d["images"] for d in service["days"]) == 20
            assert service["days"][-1]["storage"]["raw"]["objects"] >= 20  # today's storage row
            metrics = client.get("/metrics").text
        assert 'imagelake_uploads_total{outcome="accepted",status="202"} 20.0' in metrics
        total_bytes = sum(len(b) for b in bodies)
        assert f'imagelake_upload_bytes_total{{outcome="accepted"}} {float(total_bytes)}' in metrics
        today = per_day[-1][0]
        stack.wait_for(
            lambda: (storage_rows(warehouse, today) or {}).get("raw", 0) >= 20,
            60,
            "today's raw zone in marts.storage_usage_daily",
        )
    finally:
        stack.stop()
    time.sleep(1)
    still_open = [name for name, port in stack.ports.items() if port_in_use(port)]
    assert still_open == [], (
        f"processes still listening after Ctrl-C: {still_open}\n{stack.log.read_text()[-3000:]}"
    )
    # stack.stop() pressed Ctrl-C a second time while the services stopped: it was heard, not obeyed.
    assert "still stopping the services" in stack.log.read_text()
    assert stack.proc is not None and stack.proc.returncode == 0
