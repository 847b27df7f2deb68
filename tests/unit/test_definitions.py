"""The code locations load, and together their asset graph runs unbroken from the raw zone to the marts."""

import subprocess
import sys

import dagster as dg
import yaml

from imagelake.settings import PROJECT_ROOT
from orchestration.definitions import defs as imagelake_defs
from orchestration.warehouse_definitions import defs as warehouse_defs

#: The workspace as ``dagster dev`` and the UI see it: both locations' definitions in one graph.
workspace = dg.Definitions.merge(imagelake_defs, warehouse_defs)


def test_code_locations_load():
    for defs in (imagelake_defs, warehouse_defs, workspace):
        dg.Definitions.validate_loadable(defs)


def test_workspace_yaml_names_both_locations():
    locations = yaml.safe_load((PROJECT_ROOT / "workspace.yaml").read_text())["load_from"]
    assert {x["python_module"]["module_name"]: x["python_module"]["location_name"] for x in locations} == {
        "orchestration.definitions": "imagelake",
        "orchestration.warehouse_definitions": "warehouse",
    }


def test_the_real_time_location_does_not_import_dbt():
    """Each real-time batch run is a process that imports its location: dbt would double that cost."""
    probe = (
        "import sys, orchestration.definitions; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dbt', 'dagster_dbt', 'dagster_aws')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout


def test_every_dependency_has_a_valid_partition_mapping():
    graph = workspace.resolve_asset_graph()
    checked = 0
    for key in graph.get_all_asset_keys():
        for parent in graph.get(key).parent_keys:
            if graph.has(parent):
                graph.get_partition_mapping(key, parent)  # raises on a mismatch
                checked += 1
    assert checked > 10


def test_lineage_runs_from_the_raw_zone_to_the_marts():
    graph = workspace.resolve_asset_graph()
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
    jobs = [
        (defs, job.name)
        for defs in (imagelake_defs, warehouse_defs)
        for job in defs.resolve_all_job_defs()
        if job.name != "__ASSET_JOB"
    ]
    names = {name for _, name in jobs}
    assert {"realtime_batch_job", "warehouse_job", "derivatives_job", "heartbeat_job"} <= names
    for defs, name in jobs:
        assert defs.resolve_job_def(name).executor_def.name == "in_process", name
