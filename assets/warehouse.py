"""The warehouse: dbt models (staging views and marts) as Dagster assets.

Sources over the lake map onto the Dagster assets that write them, so the
asset graph runs unbroken from the raw zone to the marts. Models refresh on
their own after new curated data lands (declarative automation); one dbt
build at a time, through the ``warehouse`` pool (DuckDB has a single writer).
"""

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from imagelake.settings import PROJECT_ROOT, Settings, get_settings
from orchestration.dbt_prepare import in_run_worker

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"

#: Refresh when anything upstream changed since the last refresh, unless a refresh is running.
#: Unlike ``eager()`` this does not wait for every upstream batch partition to exist or finish:
#: a failed or running batch must not hold the marts back (files land atomically).
REFRESH_ON_NEW_DATA = (
    (dg.AutomationCondition.newly_missing() | dg.AutomationCondition.any_deps_updated()).since_last_handled()
    & ~dg.AutomationCondition.in_progress()
).with_label("refresh_on_new_data")


def dbt_project(settings: Settings) -> DbtProject:
    return DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR, target=settings.dbt_target)


class ImagelakeDbtTranslator(DagsterDbtTranslator):
    """Lake sources become the Dagster assets of the same name; models group by folder."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source" and dbt_resource_props["source_name"] == "lake":
            return dg.AssetKey(dbt_resource_props["name"])
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        fqn = dbt_resource_props.get("fqn", [])
        return fqn[1] if len(fqn) > 2 else "warehouse"

    def get_automation_condition(
        self, dbt_resource_props: Mapping[str, Any]
    ) -> dg.AutomationCondition | None:
        return REFRESH_ON_NEW_DATA


_settings = get_settings()
_project = dbt_project(_settings)
if not in_run_worker():  # the code server parsed already; a run must not pay for it again
    _project.prepare_if_dev()


@dbt_assets(
    manifest=_project.manifest_path,
    project=_project,
    dagster_dbt_translator=ImagelakeDbtTranslator(),
    pool="warehouse",
)
def warehouse_models(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    """``dbt build``: models and their tests (surfaced as asset checks)."""
    settings = get_settings()
    os.environ.update(settings.dbt_env())
    if settings.dbt_target == "local":
        settings.warehouse_path.parent.mkdir(parents=True, exist_ok=True)
    yield from dbt.cli(["build"], context=context).stream()


def dbt_resource(settings: Settings) -> DbtCliResource:
    # The dbt installed beside this interpreter, whether or not the venv is on PATH.
    return DbtCliResource(
        project_dir=dbt_project(settings),
        target=settings.dbt_target,
        dbt_executable=str(Path(sys.executable).with_name("dbt")),
    )
