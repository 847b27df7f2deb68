"""The batch schedules choose the right partitions; the code location loads them."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from imagelake.batch.compaction import compact_day
from imagelake.lake import layout
from orchestration.resources import LakeResource
from orchestration.schedules import compaction_daily, derivatives_hourly, garbage_collection_daily
from tests.support.lakerows import image_id_at, seed_batch

NOW = datetime(2026, 3, 20, 0, 5, tzinfo=UTC)


def test_derivatives_every_hour_for_today_and_yesterday():
    requests = derivatives_hourly(dg.build_schedule_context(scheduled_execution_time=NOW))
    assert [(r.partition_key, r.run_key) for r in requests] == [
        ("2026-03-19", "2026-03-19@2026-03-20T00"),
        ("2026-03-20", "2026-03-20@2026-03-20T00"),
    ]


def test_compaction_takes_yesterday_and_closed_days_that_got_late_files(lake):
    today = datetime.now(UTC).replace(hour=0, minute=30)
    late_day = today - timedelta(days=4)
    for b in range(2):
        seed_batch(lake, "t", b, 0, [(image_id_at(late_day, b), late_day, b"x")])
    context = dg.build_schedule_context(
        scheduled_execution_time=today, resources={"lake": LakeResource(url=lake.url)}
    )
    days = [r.partition_key for r in compaction_daily(context)]
    assert days == [layout.dt_of(late_day), layout.dt_of(today - timedelta(days=1))]
    for table in ("upload_events", "image_metadata"):
        compact_day(lake, table, layout.dt_of(late_day), target_bytes=1 << 27, today=today.date())
    assert [r.partition_key for r in compaction_daily(context)] == [layout.dt_of(today - timedelta(days=1))]


def test_garbage_collection_once_a_night_and_the_code_location_loads_every_batch_definition():
    request = garbage_collection_daily(dg.build_schedule_context(scheduled_execution_time=NOW))
    assert request.run_key == "gc@2026-03-20"
    from orchestration.definitions import defs

    repo = defs.get_repository_def()
    assert {"derivatives_job", "compaction_job", "garbage_collection_job"} <= set(repo.job_names)
    assert {s.name for s in repo.schedule_defs} >= {
        "derivatives_hourly",
        "compaction_daily",
        "garbage_collection_daily",
    }
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"derivatives", "lake_compaction", "storage_inventory"} <= keys
    graph = defs.resolve_asset_graph()
    assert dg.AssetKey("image_metadata") in graph.get(dg.AssetKey("derivatives")).parent_keys
