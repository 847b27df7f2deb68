"""The code location loads, and its asset graph is consistent from the raw zone to the marts."""

import dagster as dg

from orchestration.definitions import defs


def test_code_location_loads():
    dg.Definitions.validate_loadable(defs)


def test_every_dependency_has_a_valid_partition_mapping():
    graph = defs.resolve_asset_graph()
    checked = 0
    for key in graph.get_all_asset_keys():
        for parent in graph.get(key).parent_keys:
            if graph.has(parent):
                graph.get_partition_mapping(key, parent)  # raises on a mismatch
                checked += 1
    assert checked > 10


def test_lineage_runs_from_the_raw_zone_to_the_marts():
    graph = defs.resolve_asset_graph()
    mart = dg.AssetKey(["marts", "daily_upload_stats"])
    upstream, frontier = set(), {mart}
    while frontier:
        for parent in graph.get(frontier.pop()).parent_keys:
            if parent not in upstream:
                upstream.add(parent)
                if graph.has(parent):
                    frontier.add(parent)
    assert {
        dg.AssetKey("upload_events"),
        dg.AssetKey("image_metadata"),
        dg.AssetKey("raw_images"),
    } <= upstream


def test_every_job_runs_in_one_process():
    """A run is already a new process; a step subprocess on top doubles its start-up cost."""
    jobs = [job.name for job in defs.resolve_all_job_defs() if job.name != "__ASSET_JOB"]
    assert {"realtime_batch_job", "warehouse_job", "derivatives_job", "heartbeat_job"} <= set(jobs)
    for name in jobs:
        assert defs.resolve_job_def(name).executor_def.name == "in_process", name
