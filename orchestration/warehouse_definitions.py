"""The warehouse code location: the dbt models and what refreshes them (``workspace.yaml``).

A location of its own so that dbt loads only where the warehouse is built.
Every run is a new process that imports its code location, and the
``imagelake`` location starts a real-time batch run per sensor tick:
``dagster_dbt`` imports all of dbt-core, which every batch would pay for and
none uses (docs/design.md, "Code locations"; what it costs a batch:
docs/benchmarks.md, "bench-realtime"). Lineage stays one
graph: the dbt sources map onto the lake assets of ``imagelake`` by key, and
the refresh sensor reads their materializations from the instance.
"""

from orchestration.run_worker import yield_cpu_to_realtime

# A run worker of this location builds the warehouse: it yields the CPU to real-time runs from its
# start, before it imports dbt, not only once dbt runs.
yield_cpu_to_realtime()

import dagster as dg  # noqa: E402 (after the renice, on purpose)

from assets.stats_snapshot import stats_snapshot, stats_snapshot_readable  # noqa: E402
from assets.warehouse import warehouse_models  # noqa: E402
from imagelake.settings import get_settings  # noqa: E402
from orchestration.dbt_resource import dbt_resource  # noqa: E402
from orchestration.warehouse_schedules import (  # noqa: E402
    warehouse_hourly_schedule,
    warehouse_job,
    warehouse_refresh_sensor,
)

defs = dg.Definitions(
    assets=[warehouse_models, stats_snapshot],
    asset_checks=[stats_snapshot_readable],
    jobs=[warehouse_job],
    schedules=[warehouse_hourly_schedule],
    sensors=[warehouse_refresh_sensor],
    executor=dg.in_process_executor,
    resources={"dbt": dbt_resource(get_settings())},
)
