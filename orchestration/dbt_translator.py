"""How the dbt project appears in Dagster's asset graph: lake sources, groups, partition mappings.

The dbt sources over the lake become the Dagster assets that write them, so the
asset graph runs unbroken from the raw zone to the marts, across the two code
locations (docs/design.md, "Warehouse").
"""

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator

#: The Dagster asset that writes each lake table dbt reads (dbt source name -> asset key).
#: The real-time batch run writes events, dead letters and metadata; the Spark jobs write the rest.
LAKE_TABLE_ASSETS: dict[str, str] = {
    "upload_events": "upload_events",
    "dead_letters": "dead_letters",
    "image_metadata": "image_metadata",
    "derivatives": "derivatives",
    "storage_inventory": "storage_inventory",
}

#: The marts and the tables the statistics API serves are refreshed within a minute of new lake data
#: and by the hourly schedule whatever arrived: one missed hourly refresh warns, two and a margin fail,
#: so a stopped sensor or a failing build shows on the asset in the UI (Dagster's freshness daemon).
MART_FRESHNESS = dg.FreshnessPolicy.time_window(
    warn_window=timedelta(minutes=75), fail_window=timedelta(hours=3)
)
#: dbt folders whose models are an interface (contracts, freshness): analysts' marts and the API's tables.
INTERFACE_FOLDERS = frozenset({"marts", "serving"})

#: Lake tables written per Kafka batch (dynamic partitions of ``upload_batches``).
BATCH_PARTITIONED_TABLES = frozenset({"upload_events", "dead_letters", "image_metadata"})


class ImagelakeDbtTranslator(DagsterDbtTranslator):
    """Lake sources become the Dagster assets that write them; models group by folder."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source" and dbt_resource_props["source_name"] == "lake":
            return dg.AssetKey(LAKE_TABLE_ASSETS[dbt_resource_props["name"]])
        return super().get_asset_key(dbt_resource_props)

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project: Any) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        node = manifest["nodes"].get(unique_id) or {}
        if node.get("resource_type") == "model" and self.get_group_name(node) in INTERFACE_FOLDERS:
            return spec.replace_attributes(freshness_policy=MART_FRESHNESS)
        return spec

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        fqn = dbt_resource_props.get("fqn", [])
        return fqn[1] if len(fqn) > 2 else "warehouse"

    def get_partition_mapping(
        self, dbt_resource_props: Mapping[str, Any], dbt_parent_resource_props: Mapping[str, Any]
    ) -> dg.PartitionMapping | None:
        # A day of the warehouse reads every Kafka batch (a batch can carry several upload days).
        if (
            dbt_parent_resource_props.get("resource_type") == "source"
            and dbt_parent_resource_props.get("name") in BATCH_PARTITIONED_TABLES
        ):
            return dg.AllPartitionMapping()
        return None
