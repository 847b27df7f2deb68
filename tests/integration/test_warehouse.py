"""dbt on DuckDB over the lake, run through Dagster as the code location runs it."""

import dagster as dg
import duckdb
import pytest

from assets.warehouse import dbt_resource, warehouse_models
from imagelake.layout import BatchId
from imagelake.store import Lake
from orchestration.resources import KafkaResource
from tests.integration.test_realtime import run_batch
from tests.support import images
from tests.support.uploads import producer, send, store_and_announce

pytestmark = pytest.mark.integration


def build_warehouse(settings, instance) -> dg.ExecuteInProcessResult:
    return dg.materialize([warehouse_models], instance=instance, resources={"dbt": dbt_resource(settings)})


def query(settings, sql: str) -> list[tuple]:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_empty_lake_builds_empty_marts(imagelake_env):
    settings = imagelake_env()
    with dg.instance_for_test() as instance:
        result = build_warehouse(settings, instance)
    assert result.success
    assert query(settings, "select count(*) from marts.daily_upload_stats") == [(0,)]
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks)


def test_mart_counts_each_upload_once_even_when_events_and_batches_repeat(
    imagelake_env, kafka_bootstrap, topic
):
    settings = imagelake_env(IMAGELAKE_KAFKA_BOOTSTRAP=kafka_bootstrap, IMAGELAKE_UPLOADS_TOPIC=topic)
    lake = Lake.from_settings(settings)
    kafka = KafkaResource(bootstrap=kafka_bootstrap, topic=topic)
    prod = producer(kafka_bootstrap)
    sent = [store_and_announce(lake, prod, topic, images.jpeg(seed=i), partition=0) for i in range(3)]
    sent.append(
        store_and_announce(lake, prod, topic, images.png(seed=7), fmt="PNG", partition=0, client_id="other")
    )
    send(prod, topic, sent[0].encode(), key=sent[0].image_id, partition=0)  # at-least-once: delivered twice
    with dg.instance_for_test() as instance:
        batch = str(BatchId(topic, 0, 0, 4))
        assert run_batch(instance, batch, lake, kafka).success
        assert run_batch(instance, batch, lake, kafka).success  # the same batch run twice
        assert build_warehouse(settings, instance).success
        first = query(settings, "select * from marts.daily_upload_stats")
        assert build_warehouse(settings, instance).success  # and the warehouse rebuilt
    [(day, images_, bytes_, clients, jpeg, png, *_)] = first
    assert str(day) == sent[0].dt
    assert (images_, clients, jpeg, png) == (4, 2, 3, 1)
    assert bytes_ == sum(e.size_bytes for e in sent)
    assert query(settings, "select * from marts.daily_upload_stats") == first
    shas = {r[0] for r in query(settings, "select sha256 from staging.stg_image_metadata")}
    assert shas == {e.sha256 for e in sent}
