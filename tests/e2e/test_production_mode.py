"""IMAGELAKE_ENV=prod end to end on this machine: uploads over HTTP to the marts.

The stack (tests/support/prod_mode.py, infra/local/prod_stack.py) runs our
processes as the container and the Helm chart run them: the API as ``python -m
imagelake.api``, the code locations as ``dagster api grpc`` servers, the daemon
and webserver on Dagster's instance in PostgreSQL, configured from the Helm
values. Stand-ins only where the real service cannot run here: S3 is moto's S3
server, DynamoDB is DynamoDB Local, MSK is Apache Kafka, EMR Serverless is
spark-submit on this machine against the same S3 lake, Redshift is DuckDB over
the same Parquet files on S3, and runs start as processes of their code server
(DefaultRunLauncher, forked from a process that imported the location:
orchestration/code_server.py) instead of Kubernetes pods.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import date
from typing import TypeVar

import duckdb
import psutil
import pytest
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

from imagelake.lake import layout
from imagelake.lake.ids import image_id_time
from imagelake.settings import DERIVATIVE_SIZES
from infra.local.prod_stack import STORAGES
from tests.support import sample_images as images
from tests.support.prod_mode import ProdMode, wait_for

T = TypeVar("T")

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore::DeprecationWarning:gql.*")]


def marts(mode: ProdMode, sql: str) -> list[tuple] | None:
    """A query on the DuckDB warehouse, or None while it is not built or dbt holds it."""
    path = mode.stack.settings().warehouse_path
    if not path.exists():
        return None
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            return con.execute(sql).fetchall()
    except duckdb.Error:
        return None


def stale_once(call: Callable[[], T]) -> T:
    """``call`` to the webserver, asked again if it fails: a pooled PostgreSQL connection that the
    fault tests' restarts left stale fails its first request (one per storage, ProdStack.graphql;
    the client's error does not carry the server's answer). A real error fails every time."""
    for _ in range(STORAGES):
        try:
            return call()
        except DagsterGraphQLClientError:
            time.sleep(0.5)
    return call()


def launch_derivatives(mode: ProdMode, day: date) -> str:
    """What an operator does in the UI (Materialize a day of `derivatives`), through the webserver."""
    client = DagsterGraphQLClient("127.0.0.1", port_number=mode.stack.ports.ui, timeout=60)
    return stale_once(
        lambda: client.submit_job_execution(
            "derivatives_job",
            repository_location_name="imagelake",
            tags={"dagster/partition": day.isoformat()},
        )
    )


def run_status(mode: ProdMode, run_id: str) -> str:
    client = DagsterGraphQLClient("127.0.0.1", port_number=mode.stack.ports.ui, timeout=60)
    return stale_once(lambda: client.get_run_status(run_id).value)


def test_uploads_reach_the_catalog_the_derivatives_on_s3_and_the_marts(prod_mode: ProdMode):
    bodies = [images.jpeg(640, 480, seed=100 + i) for i in range(7)]
    bodies.append(bodies[0])  # an exact copy
    ids = prod_mode.upload_all(bodies)
    prod_mode.wait_processed(ids, 180)

    # What a client sees over HTTP: processed, with metadata, the copy pointing at the original.
    items = [prod_mode.get(i) for i in ids]
    assert [i["status"] for i in items] == ["processed"] * len(ids)
    assert {(i["metadata"]["format"], i["metadata"]["width"], i["metadata"]["height"]) for i in items} == {
        ("JPEG", 640, 480)
    }
    assert items[0]["duplicate"] is None
    assert items[-1]["duplicate"] == {"of": ids[0], "kind": "exact", "distance": 0}

    # The raw zone is on S3 (moto), where the API wrote it.
    lake = prod_mode.lake()
    days = sorted({image_id_time(i).date() for i in ids})
    assert all(lake.exists(layout.raw_image_key(image_id_time(i).date().isoformat(), i)) for i in ids)

    # The derivatives: the Spark job, run by spark-submit on this machine, writes them to the S3 lake.
    started = [launch_derivatives(prod_mode, day) for day in days]
    wait_for(
        lambda: all(run_status(prod_mode, r) in ("SUCCESS", "FAILURE", "CANCELED") for r in started),
        300,
        "the derivatives runs",
    )
    assert [run_status(prod_mode, r) for r in started] == ["SUCCESS"] * len(started), prod_mode.log(
        "code-imagelake"
    )[-3000:]
    for image_id in ids:
        for size in DERIVATIVE_SIZES:
            assert lake.exists(f"derivatives/{size}/{image_id}.webp"), (image_id, size)
    assert all(prod_mode.get(i)["derivatives"] for i in ids)

    # The marts, refreshed by the warehouse sensor (paused until now: tests/support/prod_mode.py), count
    # every upload the API accepted in this session exactly once (the fault tests' included), and the
    # derivatives made.
    prod_mode.stack.set_automation("warehouse", "sensor", "warehouse_refresh_sensor", running=True)
    per_day = Counter(image_id_time(i).date() for i in prod_mode.accepted)
    wait_for(
        lambda: (
            dict(marts(prod_mode, "select upload_date, images from marts.daily_upload_stats") or [])
            == dict(per_day)
            and sum(
                n
                for (n,) in marts(
                    prod_mode, "select images_with_derivatives from marts.processing_latency_daily"
                )
                or []
            )
            >= len(ids)
        ),
        300,
        "the marts to count every accepted upload and the derivatives",
        lambda: (
            f"marts: {marts(prod_mode, 'select upload_date, images from marts.daily_upload_stats')}, "
            f"expected {dict(per_day)}"
        ),
    )

    # Dagster's instance is the PostgreSQL one, and the runs were launched by its code servers.
    with prod_mode.instance() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.run_launcher).__name__ == "DefaultRunLauncher"
        runs = instance.get_runs()
    assert {r.job_name for r in runs} >= {"realtime_batch_job", "derivatives_job", "warehouse_job"}
    assert {r.remote_job_origin.location_name for r in runs if r.remote_job_origin} == {
        "imagelake",
        "warehouse",
    }
    # Each code server started its runs from its forkserver, which imported the location once.
    for name in ("code-imagelake", "code-warehouse"):
        children = psutil.Process(prod_mode.stack.services[name].process.pid).children()
        assert any("multiprocessing.forkserver" in " ".join(c.cmdline()) for c in children), name
    assert not prod_mode.stack.dead()
