"""Ctrl-C on `make dev` while a batch runs loses no upload: the batch runs again on restart.

The Kafka sensor's cursor is past a batch once its run is launched, so a run
stopped half-way must be retried by Dagster (run retries, orchestration/jobs.py)
or its images stay `accepted` for good.
"""

import time

import httpx
import pytest

from tests.support import sample_images as images
from tests.support.dev_stack import DevStack

pytestmark = pytest.mark.e2e
UPLOADS = 48  # enough that a batch run lasts seconds, long enough to stop it half-way


def statuses(stack: DevStack, ids: list[str]) -> list[str]:
    with httpx.Client(base_url=stack.api, timeout=30, headers={"X-API-Key": "dev-key"}) as client:
        return [client.get(f"/v1/images/{image_id}").json().get("status") for image_id in ids]


def in_flight(stack: DevStack, timeout: float) -> list[str]:
    """The batch runs launched and not finished, as soon as there is one (polled often: a
    batch takes a few seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = [
            r["runId"] for r in stack.runs("realtime_batch_job") if r["status"] in ("STARTING", "STARTED")
        ]
        if running:
            return running
        time.sleep(0.2)
    raise AssertionError(f"no realtime batch run started within {timeout:.0f}s")


def test_a_batch_stopped_by_ctrl_c_runs_again_when_make_dev_restarts(tmp_path):
    stack = DevStack.on_free_ports(tmp_path)
    bodies = [images.jpeg(1200, 900, seed=i) for i in range(UPLOADS)]
    try:
        stack.start()
        with httpx.Client(base_url=stack.api, timeout=60) as client:
            ids = [
                client.post(
                    "/v1/images",
                    headers={"X-API-Key": "dev-key"},
                    files={"file": (f"photo{i}.jpg", body, "image/jpeg")},
                ).json()["image_id"]
                for i, body in enumerate(bodies)
            ]
        running = in_flight(stack, 120)
        stack.stop()

        stack.start()
        stack.wait_for(
            lambda: statuses(stack, ids) == ["processed"] * UPLOADS, 240, "every upload to be processed"
        )
        runs = {r["runId"]: r for r in stack.runs("realtime_batch_job")}
        stopped = [run_id for run_id in running if runs[run_id]["status"] != "SUCCESS"]
        assert stopped, f"the runs {running} finished before Ctrl-C: nothing was stopped half-way"
        parents = {
            tag["value"]: run["status"]
            for run in runs.values()
            for tag in run["tags"]
            if tag["key"] == "dagster/parent_run_id"
        }
        assert all(parents.get(run_id) == "SUCCESS" for run_id in stopped), (stopped, parents)
    finally:
        stack.stop()
