"""Spark job: compact one closed upload date of every lake table into one (or a few) files per table.

Each task compacts one table's day (read, de-duplicate by the exactly-once
rule, write, read back and verify, then delete what was replaced), so tables
are reorganised in parallel and a failure in one leaves the others done.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from functools import partial

from imagelake.compaction import CompactParams, compact_day
from spark_jobs.common import run_job


def _compact_tables(extras: dict, today: str, tables) -> list[dict]:
    params = CompactParams.from_extras(extras)
    lake = params.lake()
    return [
        compact_day(
            lake, table, params.dt, target_bytes=params.target_bytes, today=date.fromisoformat(today)
        ).to_dict()
        for table in tables
    ]


def run(spark, params: CompactParams, log) -> dict:
    started = time.monotonic()
    today = datetime.now(UTC).date()
    if date.fromisoformat(params.dt) >= today:
        log.warning(
            f"dt={params.dt} is not closed yet (today is {today}): compaction waits for the day to end"
        )
    tables = list(params.tables)
    results = (
        spark.sparkContext.parallelize(tables, len(tables))
        .mapPartitions(partial(_compact_tables, params.to_extras(), today.isoformat()))
        .collect()
    )
    for r in results:
        if r["status"] == "compacted":
            log.info(
                f"{r['table']} dt={r['dt']}: {r['source_files']} files, {r['source_rows']} rows -> "
                f"{len(r['written'])} file(s), {r['rows']} rows; {r['bytes_before']} -> {r['bytes_after']} bytes"
            )
        if r["kept"]:
            log.warning(
                f"{r['table']} dt={r['dt']}: {len(r['kept'])} file(s) changed meanwhile, kept for next time"
            )
    compacted = [r for r in results if r["status"] == "compacted"]
    return {
        "dt": params.dt,
        "tables_compacted": len(compacted),
        "files_before": sum(r["source_files"] for r in results),
        "files_deleted": sum(len(r["deleted"]) for r in results),
        "files_written": sum(len(r["written"]) for r in results),
        "rows": sum(r["rows"] for r in compacted),
        "duplicate_rows_dropped": sum(r["source_rows"] - r["rows"] for r in compacted),
        "bytes_before": sum(r["bytes_before"] for r in results),
        "bytes_after": sum(r["bytes_after"] for r in results),
        "by_table": {r["table"]: r["status"] for r in results},
        "open_day": all(r["status"] == "open_day" for r in results),
        "duration_s": round(time.monotonic() - started, 3),
    }


if __name__ == "__main__":
    run_job("compaction", CompactParams, run)
