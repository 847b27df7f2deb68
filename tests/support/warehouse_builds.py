"""Building the warehouse through Dagster in tests, and reading it back."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb

from assets.stats_snapshot import stats_snapshot, stats_snapshot_readable
from assets.warehouse import warehouse_models
from imagelake.settings import Settings
from imagelake.warehouse.days import DayWindow
from orchestration.dbt_resource import dbt_resource
from tests.support import marts_oracle


def build(
    settings: Settings,
    instance: dg.DagsterInstance,
    window: DayWindow,
    *,
    full_refresh: bool = False,
    raise_on_error: bool = True,
    snapshot: bool = False,
) -> dg.ExecuteInProcessResult:
    """One warehouse run over ``window``, as the sensor or a backfill would launch it; with
    ``snapshot``, the statistics snapshot too, as ``warehouse_job`` does."""
    single = window.first == window.last
    tags = (
        {}
        if single
        else {
            "dagster/asset_partition_range_start": window.first.isoformat(),
            "dagster/asset_partition_range_end": window.last.isoformat(),
        }
    )
    return dg.materialize(
        [warehouse_models, stats_snapshot, stats_snapshot_readable] if snapshot else [warehouse_models],
        instance=instance,
        resources={"dbt": dbt_resource(settings)},
        partition_key=window.first.isoformat() if single else None,
        tags=tags,
        run_config={"ops": {"warehouse_models": {"config": {"full_refresh": full_refresh}}}},
        raise_on_error=raise_on_error,
    )


def query(settings: Settings, sql: str) -> list[tuple]:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        return con.execute(sql).fetchall()


def rows(settings: Settings, table: str) -> list[dict]:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        cursor = con.execute(f"select * from {table}")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]


def fingerprint(settings: Settings) -> dict[str, tuple]:
    """Row count and an order-independent checksum of every mart and detail table."""
    tables = [
        "intermediate.int_images",
        "marts.daily_upload_stats",
        "marts.client_usage_daily",
        "marts.duplicate_images",
        "marts.storage_usage_daily",
        "marts.processing_latency_daily",
    ]
    out = {}
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        for table in tables:
            out[table] = con.execute(
                f"select count(*), coalesce(sum(hash(t)), 0) from {table} as t"
            ).fetchone()
    return out


#: Per-image detail tables: a build writes only the rows of these that changed (macros/changed_rows.sql).
DETAIL_TABLES = ("intermediate.int_images", "marts.duplicate_images")


def storage_blocks(settings: Settings, table: str) -> list[tuple]:
    """Where DuckDB keeps a table's data: the same list after a build means the build wrote none of it."""
    return query(
        settings,
        "select row_group_id, column_id, segment_id, block_id, block_offset"
        f" from pragma_storage_info('{table}') order by all",
    )


def _plain(value):
    return float(value) if isinstance(value, Decimal) else value


def assert_marts_match_lake(settings: Settings, lake_root: Path, days: list[date] | None = None) -> None:
    """Every mart equals what the curated data says (tests/support/marts_oracle.py)."""

    def keep(key) -> bool:
        day = key[0] if isinstance(key, tuple) else key
        return days is None or day in days

    daily = {r["upload_date"]: r for r in rows(settings, "marts.daily_upload_stats")}
    expected = {k: v for k, v in marts_oracle.daily_upload_stats(lake_root).items() if keep(k)}
    assert {k: {c: daily[k][c] for c in v} for k, v in expected.items() if k in daily} == expected
    assert {k for k in daily if keep(k)} == set(expected)

    clients = {(r["upload_date"], r["client_id"]): r for r in rows(settings, "marts.client_usage_daily")}
    expected = {k: v for k, v in marts_oracle.client_usage_daily(lake_root).items() if keep(k)}
    assert {k for k in clients if keep(k)} == set(expected)
    assert {k: {c: clients[k][c] for c in v} for k, v in expected.items()} == expected

    dups = {r["image_id"]: r for r in rows(settings, "marts.duplicate_images") if keep(r["upload_date"])}
    expected = {k: v for k, v in marts_oracle.duplicate_images(lake_root).items() if keep(v["upload_date"])}
    assert set(dups) == set(expected)
    assert {k: {c: dups[k][c] for c in v} for k, v in expected.items()} == expected

    latency = {r["upload_date"]: r for r in rows(settings, "marts.processing_latency_daily")}
    expected = {k: v for k, v in marts_oracle.processing_latency_daily(lake_root).items() if keep(k)}
    assert {k for k in latency if keep(k)} == set(expected)
    for day, row in expected.items():
        for column, value in row.items():
            actual = _plain(latency[day][column])
            if value is None or actual is None:
                assert actual == value, (day, column)
            else:
                assert abs(actual - value) <= 0.0015, (day, column, actual, value)

    storage = {(r["usage_date"], r["zone"]): r for r in rows(settings, "marts.storage_usage_daily")}
    expected = {k: v for k, v in marts_oracle.storage_usage_daily(lake_root).items() if keep(k)}
    assert {k for k in storage if keep(k)} == set(expected)
    assert {k: {c: storage[k][c] for c in v} for k, v in expected.items()} == expected
