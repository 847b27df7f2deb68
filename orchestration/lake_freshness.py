"""``make warehouse-freshness``: how old each lake table's newest row is (dbt source freshness),
and, for a table no job has filled yet, which job fills it and how to run it.

dbt's freshness query fails on a table with no file (DuckDB reads a glob that matches nothing),
which on a new install made the whole command fail with a compilation error. A table with no
data yet is not stale: it is reported with what to do, and dbt checks the others.
"""

from __future__ import annotations

import sys

from imagelake.lake import layout
from imagelake.lake.store import Lake
from imagelake.settings import get_settings
from orchestration import dbt_prepare

_RUN = "DAGSTER_HOME=$PWD/.data/dagster .venv/bin/dagster job execute"
_TODAY = """--tags '{"dagster/partition": "'$(date -u +%F)'"}'"""

#: For each lake table dbt checks: the job that fills it, and how a user runs it (README names the same).
FILLED_BY: dict[str, tuple[str, str]] = {
    "upload_events": (
        "realtime_batch_job (the Kafka sensor starts it after an upload)",
        "curl -H 'X-API-Key: dev-key' -F file=@photo.jpg http://127.0.0.1:8000/v1/images  (with make dev running)",
    ),
    "image_metadata": (
        "realtime_batch_job (the Kafka sensor starts it after an upload)",
        "curl -H 'X-API-Key: dev-key' -F file=@photo.jpg http://127.0.0.1:8000/v1/images  (with make dev running)",
    ),
    "derivatives": (
        "derivatives_job (hourly)",
        f"{_RUN} -m orchestration.definitions -j derivatives_job {_TODAY}",
    ),
    "storage_inventory": (
        "warehouse_job (each refresh lists today's objects) and garbage_collection_job (nightly)",
        f"{_RUN} -m orchestration.warehouse_definitions -j warehouse_job {_TODAY}",
    ),
}


def has_data(lake: Lake, table: str) -> bool:
    return any(info.key.endswith(".parquet") for info in lake.list(layout.table_prefix(table)))


def report(lake: Lake) -> tuple[list[str], list[str]]:
    """The tables with data, and a line for each table that has none yet."""
    filled, lines = [], []
    for table, (job, command) in FILLED_BY.items():
        if has_data(lake, table):
            filled.append(table)
        else:
            lines.append(f"lake table {table}: no data yet, filled by {job}; run it with:\n    {command}")
    return filled, lines


def main() -> int:
    filled, lines = report(Lake.from_settings(get_settings()))
    for line in lines:
        print(line)
    if not filled:
        print("no lake table has data yet: nothing to check for freshness")
        return 0
    return dbt_prepare.main(["source", "freshness", "--select", *(f"source:lake.{t}" for t in filled)])


if __name__ == "__main__":
    sys.exit(main())
