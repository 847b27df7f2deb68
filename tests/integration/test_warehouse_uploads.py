"""Done when: after uploads through the API, every mart holds the right figures.

Images go through the real upload API (HTTP), Kafka, the Kafka sensor and the
real-time batch run; the warehouse refresh sensor asks for a run, which builds
every mart through Dagster; each mart is then checked against the curated data
(tests/support/marts_oracle.py). Derivatives and the storage listing are
written the way the Spark jobs record them (issue 4 brings the jobs).
"""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import httpx
import pytest

from imagelake.api.application import create_app
from imagelake.lake.layout import batch_file_key, dt_of
from imagelake.lake.store import Lake
from imagelake.lake.tables import read_batch_table, to_parquet_bytes
from imagelake.warehouse.days import DayWindow
from orchestration.resources import KafkaResource
from orchestration.warehouse_schedules import warehouse_refresh_sensor
from tests.integration.test_realtime import run_batch, tick
from tests.integration.test_warehouse_sensor import days
from tests.support import lake_data
from tests.support import sample_images as images
from tests.support.servers import serve
from tests.support.warehouse_builds import assert_marts_match_lake, build, query

pytestmark = pytest.mark.integration


def test_uploads_through_the_api_reach_every_mart(imagelake_env, kafka_bootstrap, topic, catalog):
    settings = imagelake_env(
        IMAGELAKE_KAFKA_BOOTSTRAP=kafka_bootstrap,
        IMAGELAKE_UPLOADS_TOPIC=topic,
        IMAGELAKE_API_KEYS="key-a:studio-a,key-b:studio-b",
    )
    lake = Lake.from_settings(settings)
    kafka = KafkaResource(bootstrap=kafka_bootstrap, topic=topic)
    uploads = [("key-a", images.jpeg(160, 120, seed=i), "image/jpeg") for i in range(6)]
    uploads += [("key-b", images.png(90, 60, seed=i), "image/png") for i in range(3)]
    uploads.append(("key-b", uploads[0][1], "image/jpeg"))  # the same bytes again, by another client
    with (
        serve(create_app(settings, lake=lake, catalog=catalog)) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        accepted = []
        for i, (key, data, mime) in enumerate(uploads):
            response = client.post(
                "/v1/images", headers={"X-API-Key": key}, files={"file": (f"{i}", data, mime)}
            )
            assert response.status_code == 202, response.text
            accepted.append(response.json())
    # one stored object disappears before its batch runs: that image is recorded as failed
    gone = accepted[3]["image_id"]
    [gone_key] = [o.key for o in lake.list("raw/images") if o.key.endswith(gone)]
    lake.delete(gone_key)

    with dg.instance_for_test() as instance:
        planned, _ = tick(instance, kafka, None)
        for request in planned.run_requests:
            assert run_batch(instance, request.partition_key, lake, kafka, catalog).success
            metadata = read_batch_table(lake, "image_metadata", request.partition_key)
            derivatives = lake_data.derivatives_for(metadata, run_id=f"derivatives-{request.partition_key}")
            for key, size in zip(
                derivatives["key"].to_pylist(), derivatives["size_bytes"].to_pylist(), strict=True
            ):
                lake.put(key, bytes(size))  # the derivative itself, as large as its row says
            for day in sorted({dt_of(t) for t in derivatives["uploaded_at"].to_pylist()}):
                rows = derivatives.filter([dt_of(t) == day for t in derivatives["uploaded_at"].to_pylist()])
                lake.put(
                    batch_file_key("derivatives", day, f"derivatives-{request.partition_key}"),
                    to_parquet_bytes(rows),
                )
        now = datetime.now(UTC)
        inventory = lake_data.listing_inventory(lake, now)
        lake.put(
            batch_file_key("storage_inventory", dt_of(now), "inventory-test"), to_parquet_bytes(inventory)
        )

        refresh = warehouse_refresh_sensor(dg.build_sensor_context(instance=instance))
        [request] = refresh.run_requests
        first, last = days(request)
        result = build(
            settings,
            instance,
            DayWindow(datetime.fromisoformat(first).date(), datetime.fromisoformat(last).date()),
        )
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks), [c.check_name for c in checks if not c.passed]

    assert_marts_match_lake(settings, Path(settings.lake_root_for_sql))
    today = now.date()  # the inventory snapshot's day
    [(images_, clients, jpeg, png, failed)] = query(
        settings,
        "select images, distinct_clients, jpeg_images, png_images, failed_images from marts.daily_upload_stats",
    )
    assert (images_, clients, jpeg, png, failed) == (10, 2, 7, 3, 1)
    usage = dict(query(settings, "select client_id, uploads from marts.client_usage_daily"))
    assert usage == {"studio-a": 6, "studio-b": 4}
    failures = dict(query(settings, "select client_id, failures from marts.client_usage_daily"))
    assert failures == {"studio-a": 1, "studio-b": 0}
    zones = {
        z
        for (z,) in query(
            settings, f"select zone from marts.storage_usage_daily where usage_date = '{today}'"
        )
    }
    assert zones == {"raw", "curated", "derivatives"}
    [(with_derivatives,)] = query(
        settings, "select images_with_derivatives from marts.processing_latency_daily"
    )
    assert with_derivatives == 9
