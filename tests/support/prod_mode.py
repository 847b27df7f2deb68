"""The production-mode stack for end-to-end tests: what they start, and how they look at it.

One :class:`ProdMode` serves the whole session (starting it is the slow part): the
stack of ``infra/local/prod_stack.py`` on free ports, with S3 reached through a
relay a test can take down, and a record of every upload the API accepted, so
the last test can check that the marts count each exactly once. Tests look from
outside: over HTTP, in the catalog (DynamoDB Local), on moto's S3 directly, and
at Dagster's records in PostgreSQL.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pyarrow.parquet as pq
from dagster._core.instance.ref import InstanceRef

from imagelake.catalog import Catalog
from imagelake.lake.store import Lake
from infra.k8s.instance import load_values
from infra.local.moto_s3 import CREDENTIALS
from infra.local.prod_instance import code_servers
from infra.local.prod_stack import BATCH_WORK, LAKE_BUCKET, ProdPorts, ProdStack
from tests.support.servers import OutageRelay

API_KEY = "dev-key"
#: What the tests change from the stack's defaults: quicker refreshes, a batch run's retried step
#: sooner is not among them (the retry policy is the product's).
#: Set it (to anything) to keep the stack's folder, its services' logs included, after the tests.
KEEP_ENV = "IMAGELAKE_KEEP_TEST_STACK"
#: The tests pause the batch work once the stack is up (BATCH_WORK): the Spark schedules' runs would
#: only compete for the machine's two cores at the top of an hour, and test_production_mode.py starts the
#: warehouse's refresh once there is something for the marts to count (a dbt build on every lake change
#: would otherwise run through every fault test).
TEST_ENV = {"IMAGELAKE_SENSOR_INTERVAL_S": "3", "IMAGELAKE_WAREHOUSE_REFRESH_INTERVAL_S": "10"}


@dataclass
class ProdMode:
    stack: ProdStack
    s3: OutageRelay
    root: Path
    #: Every upload the API answered 202 in this session (the marts must count each once).
    accepted: list[str] = field(default_factory=list)

    @classmethod
    @contextmanager
    def started(cls) -> Iterator[ProdMode]:
        # As root PostgreSQL runs as nobody, which cannot enter pytest's 0700 temp dirs.
        root = Path(tempfile.mkdtemp(prefix="imagelake-prod-mode-"))
        root.chmod(0o755)
        try:
            ports = ProdPorts.free(code_servers(load_values()))
            relay = OutageRelay(f"127.0.0.1:{ports.s3}", avoid=ports.all())
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        stack = ProdStack(root / "data", ports, s3_endpoint=relay.endpoint, env=TEST_ENV)
        saved = {k: os.environ.get(k) for k in ("DAGSTER_PG_PASSWORD", *CREDENTIALS)}
        try:
            stack.start()
            for location, kind, name in BATCH_WORK:
                stack.set_automation(location, kind, name, running=False)
            os.environ.update(CREDENTIALS)
            os.environ["DAGSTER_PG_PASSWORD"] = stack.environment()["DAGSTER_PG_PASSWORD"]
            yield cls(stack, relay, root)
        finally:
            stack.stop()
            relay.close()
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            if os.environ.get(KEEP_ENV):
                print(f"\nthe production-mode stack's folder (logs, PostgreSQL, Kafka) is kept: {root}")
            else:
                shutil.rmtree(root, ignore_errors=True)

    # -- over HTTP, as a client ---------------------------------------------------------------
    def upload(self, body: bytes, name: str = "photo.jpg") -> httpx.Response:
        with httpx.Client(base_url=self.stack.api, timeout=60, headers={"X-API-Key": API_KEY}) as client:
            response = client.post("/v1/images", files={"file": (name, body, "image/jpeg")})
        if response.status_code == 202:
            self.accepted.append(response.json()["image_id"])
        return response

    def upload_all(self, bodies: list[bytes]) -> list[str]:
        ids = []
        for body in bodies:
            response = self.upload(body)
            assert response.status_code == 202, response.text
            ids.append(response.json()["image_id"])
        return ids

    def get(self, image_id: str) -> dict[str, Any]:
        with httpx.Client(base_url=self.stack.api, timeout=30, headers={"X-API-Key": API_KEY}) as client:
            return client.get(f"/v1/images/{image_id}").json()

    # -- behind the API ---------------------------------------------------------------------------
    def catalog(self) -> Catalog:
        return Catalog.from_settings(self.stack.settings())

    def statuses(self, ids: list[str]) -> dict[str, str]:
        items = self.catalog().get_many(ids, consistent=True)
        return {i: items.get(i, {}).get("status", "missing") for i in ids}

    def wait_processed(self, ids: list[str], timeout: float, what: str = "the uploads") -> None:
        wait_for(
            lambda: set(self.statuses(ids).values()) == {"processed"},
            timeout,
            f"{what} to be processed",
            lambda: f"statuses: {self.statuses(ids)}; dead services: {self.stack.dead()}",
        )

    def lake(self) -> Lake:
        """The lake on moto's S3 directly, not through the relay a test may have taken down."""
        return Lake(f"s3://{LAKE_BUCKET}", self.stack.moto_endpoint)

    def table_rows(self, table: str, prefix: str) -> list[dict[str, Any]]:
        """Every row of every file of a lake table (no read rule: copies show as copies)."""
        lake = self.lake()
        rows: list[dict[str, Any]] = []
        for info in lake.list(prefix):
            if info.key.endswith(".parquet"):
                import io

                rows += pq.read_table(io.BytesIO(lake.get(info.key))).to_pylist()
        return rows

    @contextmanager
    def instance(self) -> Iterator[dg.DagsterInstance]:
        """Dagster's instance as the daemon sees it (PostgreSQL)."""
        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(self.stack.dagster_home))) as instance:
            yield instance

    def batch_runs(self) -> list[dg.RunRecord]:
        with self.instance() as instance:
            return list(instance.get_run_records(dg.RunsFilter(job_name="realtime_batch_job")))

    def log(self, service: str) -> str:
        path = self.stack.services[service].log_path
        return path.read_text(errors="replace") if path else ""


def wait_for(
    predicate: Callable[[], bool], timeout: float, what: str, explain: Callable[[], str] = lambda: ""
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}. {explain()}")
