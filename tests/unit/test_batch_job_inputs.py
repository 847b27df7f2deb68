"""Batch jobs refuse inputs they cannot use (a day outside the partitions, the open day, image ids
not of the day) once, with a clear error, before any Spark work starts."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from assets.derivatives import derivatives
from imagelake.lake import layout
from imagelake.lake.tables import write_batch_table
from orchestration.definitions import defs
from orchestration.resources import CatalogResource, LakeResource
from orchestration.spark import SparkResource
from tests.support.lakerows import image_id_at, metadata_row

TODAY = datetime.now(UTC).date()


def failure_of(job_name: str, day: str) -> str:
    """Run a job the way the CLI and GraphQL do (a partition *tag*, which Dagster does not
    check against the partitions) and return its one step failure's description: the job's
    step retries (orchestration/jobs.py) must not repeat it."""
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def(job_name).execute_in_process(
            instance=instance, tags={"dagster/partition": day}, raise_on_error=False
        )
        assert not result.success
        [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
        retried = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
        assert not retried, "a failure that cannot pass by itself was retried"
        assert not instance.fetch_materializations(dg.AssetKey(_ASSET[job_name]), limit=1).records
        return failure.step_failure_data.user_failure_data.description


_ASSET = {"derivatives_job": "derivatives", "compaction_job": "lake_compaction"}


@pytest.mark.parametrize("job_name", sorted(_ASSET))
@pytest.mark.parametrize("day", [(TODAY + timedelta(days=30)).isoformat(), "2024-12-31"])
def test_a_day_outside_the_partitions_fails_and_says_which_days_exist(job_name, day):
    message = failure_of(job_name, day)
    assert f"{day!r} is not an upload day" in message and "2025-01-01 to today" in message


@pytest.mark.parametrize("day", ["24-11-2026", "yesterday"])
def test_a_key_that_is_no_date_is_refused_by_dagster_before_any_step(day):
    with dg.instance_for_test() as instance, pytest.raises(ValueError, match="%Y-%m-%d"):
        defs.resolve_job_def("derivatives_job").execute_in_process(
            instance=instance, tags={"dagster/partition": day}, raise_on_error=False
        )


@pytest.mark.parametrize("job_name", sorted(_ASSET))
def test_a_day_past_the_retention_fails_before_spark_spends_time_on_nothing(job_name):
    today = datetime.now(UTC).date()  # now, not at import: a run may cross midnight
    day = today - timedelta(days=8)
    message = failure_of(job_name, day.isoformat())
    assert f"{day} is past the retention period (7 days" in message
    assert f"oldest day kept is {today - timedelta(days=7)}" in message


def test_compaction_of_the_open_day_fails_and_says_when_it_will_run():
    today = datetime.now(UTC).date()
    message = failure_of("compaction_job", today.isoformat())
    assert f"{today} is still open" in message and "00:30 UTC" in message


@pytest.mark.parametrize(
    ("image_ids", "told"),
    [
        (["../../etc/passwd"], "config image_ids: not an image id: '../../etc/passwd'"),
        ([image_id_at(datetime.now(UTC), 7)], "not processed images of dt="),
    ],
)
def test_derivatives_for_image_ids_not_of_the_day_fail_once_and_render_nothing(lake, image_ids, told):
    day = datetime.now(UTC) - timedelta(days=1)
    here = image_id_at(day, 1)
    write_batch_table(
        lake, "image_metadata", "t-0-0-0", [metadata_row(here, day, "t-0-0-0")], [layout.dt_of(day)]
    )
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [derivatives],
            instance=instance,
            partition_key=layout.dt_of(day),
            resources={
                "spark": SparkResource(spark_master="local[1]"),
                "lake": LakeResource(url=lake.url),
                "catalog": CatalogResource(table=""),
            },
            run_config={"ops": {"derivatives": {"config": {"image_ids": image_ids}}}},
            raise_on_error=False,
        )
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    description = failure.step_failure_data.user_failure_data.description
    assert description.startswith("config image_ids:") and told in description  # said before Spark started
    assert not list(lake.list("derivatives"))
