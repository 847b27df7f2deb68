"""What starts a warehouse run: the refresh sensor (new lake data) and the hourly schedule."""

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from imagelake.settings import WAREHOUSE_LOOKBACK_DAYS
from orchestration.warehouse_schedules import (
    warehouse_hourly_schedule,
    warehouse_job,
    warehouse_refresh_sensor,
)

pytestmark = pytest.mark.integration
TODAY = datetime.now(UTC).date()
RANGE = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


def report(instance: dg.DagsterInstance, asset: str, files: list[str], partition: str | None = None) -> None:
    """Record a materialization of an upstream asset, as its run would."""
    if partition:
        instance.add_dynamic_partitions("upload_batches", [partition])
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=asset, partition=partition, metadata={"files": dg.MetadataValue.json(files)}
        )
    )


def tick(instance: dg.DagsterInstance, cursor: str | None):
    return warehouse_refresh_sensor(dg.build_sensor_context(instance=instance, cursor=cursor))


def days(request: dg.RunRequest) -> tuple[str, str]:
    return request.tags[RANGE[0]], request.tags[RANGE[1]]


def test_a_late_event_widens_the_refresh_back_to_its_upload_day():
    late = TODAY - timedelta(days=3)
    with dg.instance_for_test() as instance:
        first = tick(instance, None)
        assert isinstance(first, dg.SkipReason) and "no new lake data" in first.skip_message
        batch = "image-uploads-0-0-9"
        report(
            instance,
            "upload_events",
            [f"raw/events/dt={late}/{batch}.parquet", f"raw/events/dt={TODAY}/{batch}.parquet"],
            partition=batch,
        )
        report(instance, "image_metadata", [f"curated/image_metadata/dt={TODAY}/{batch}.parquet"], batch)
        result = tick(instance, None)
        [request] = result.run_requests
        assert days(request) == (late.isoformat(), TODAY.isoformat())
        assert request.tags["imagelake/reason"] == "new lake data"
        assert set(json.loads(result.cursor)) == {"upload_events", "image_metadata"}

        again = tick(instance, result.cursor)
        assert isinstance(again, dg.SkipReason) and "no new lake data" in again.skip_message


def test_data_whose_writer_names_no_day_refreshes_the_lookback_window():
    def lookback(today):
        return (today - timedelta(days=WAREHOUSE_LOOKBACK_DAYS)).isoformat(), today.isoformat()

    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key="derivatives"))
        before = datetime.now(UTC).date()
        [request] = tick(instance, None).run_requests
        after = datetime.now(UTC).date()  # the tick may fall either side of midnight UTC
    assert days(request) in {lookback(before), lookback(after)}


def test_runs_that_wrote_no_file_advance_the_cursor_and_start_no_build():
    with dg.instance_for_test() as instance:
        report(instance, "storage_inventory", [])  # a garbage collection that left an empty lake
        report(instance, "derivatives", [])  # an hourly derivatives run with nothing to do
        quiet = tick(instance, None)
        assert not quiet.run_requests and "wrote no lake files" in quiet.skip_reason.skip_message
        assert set(json.loads(quiet.cursor)) == {"storage_inventory", "derivatives"}

        report(instance, "derivatives", [f"curated/derivatives/dt={TODAY}/run-1.parquet"])
        [request] = tick(instance, quiet.cursor).run_requests
        assert days(request) == (TODAY.isoformat(), TODAY.isoformat())


def test_runs_do_not_pile_up_behind_a_running_build_and_nothing_is_lost():
    def add_run(instance, n: int, status: dg.DagsterRunStatus) -> dg.DagsterRun:
        return instance.add_run(dg.DagsterRun(job_name=warehouse_job.name, run_id=f"{n:036d}", status=status))

    with dg.instance_for_test() as instance:
        report(instance, "upload_events", [f"raw/events/dt={TODAY}/b.parquet"], "image-uploads-1-0-0")
        waiting = add_run(instance, 1, dg.DagsterRunStatus.NOT_STARTED)
        skipped = tick(instance, None)
        assert isinstance(skipped, dg.SkipReason) and "already waiting" in skipped.skip_message
        instance.delete_run(waiting.run_id)

        running = add_run(instance, 2, dg.DagsterRunStatus.STARTED)
        [request] = tick(instance, None).run_requests  # one build runs: the next may queue behind it
        assert days(request) == (TODAY.isoformat(), TODAY.isoformat())
        behind = add_run(instance, 3, dg.DagsterRunStatus.STARTED)  # started, waiting for the pool
        assert isinstance(tick(instance, None), dg.SkipReason)  # so no third one

        instance.delete_run(running.run_id)
        instance.delete_run(behind.run_id)
        [again] = tick(instance, None).run_requests  # the data is still picked up, later
        assert days(again) == (TODAY.isoformat(), TODAY.isoformat())


def test_the_hourly_schedule_rebuilds_today_and_the_lookback_days():
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 3, 10, 5, 7, tzinfo=UTC))
    request = warehouse_hourly_schedule(context)
    assert days(request) == ("2026-03-07", "2026-03-10")
    assert request.tags["imagelake/reason"] == "hourly"
