"""Spark job: compact one closed upload date of every lake table into one (or a few) files per table.

Each task compacts one table's day (read, de-duplicate by the exactly-once
rule, write, read back and verify, then delete what was replaced), so tables
are reorganised in parallel and a failure in one leaves the others done.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from functools import partial

from imagelake.batch.compaction import CompactParams, compact_day, is_open_day
from imagelake.lake.tables import CorruptLakeFile
from spark_jobs.executors import executor_report, on_executors
from spark_jobs.sessions import run_job


class CompactionIncomplete(RuntimeError):
    """Some tables of the day could not be compacted; the others were, and stay so."""


class CompactionBlocked(CompactionIncomplete):
    """Only damaged lake files stopped it: running it again cannot help until they are fixed."""


def _compact_tables(extras: dict, today: str, tables) -> list[dict]:
    """Each table on its own: one that fails (a damaged file, say) is reported, not raised, so
    the job can still say which tables it finished."""
    params = CompactParams.from_extras(extras)
    lake = params.lake()
    results = []
    for table in tables:
        try:
            day = compact_day(
                lake, table, params.dt, target_bytes=params.target_bytes, today=date.fromisoformat(today)
            )
            results.append(day.to_dict())
        except Exception as exc:  # reported per table; the driver raises once all are done
            damaged = isinstance(exc, CorruptLakeFile)
            results.append(
                {"table": table, "dt": params.dt, "status": "failed", "error": f"{exc}", "damaged": damaged}
            )
    return results


def run(spark, params: CompactParams, log) -> dict:
    started = time.monotonic()
    today = datetime.now(UTC).date()
    if is_open_day(params.dt, today):
        log.warning(
            f"dt={params.dt} is not closed yet (today is {today}): compaction waits for the day to end"
        )
    tables = list(params.tables)
    results, pythons = on_executors(
        spark.sparkContext.parallelize(tables, len(tables)),
        partial(_compact_tables, params.to_extras(), today.isoformat()),
    )
    failed = {r["table"]: r["error"] for r in results if r["status"] == "failed"}
    blocked = all(r["damaged"] for r in results if r["status"] == "failed")
    results = [r for r in results if r["status"] != "failed"]
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
    if failed:
        done = ", ".join(f"{r['table']} ({r['status']})" for r in results) or "none"
        problems = "; ".join(f"{table}: {error.rstrip('.')}" for table, error in sorted(failed.items()))
        raise (CompactionBlocked if blocked else CompactionIncomplete)(
            f"dt={params.dt}: {len(failed)} of {len(tables)} tables not compacted. {problems}. "
            f"Finished and kept: {done}. Their batch files are still read as they are; fix the cause "
            "and run the job again: finished tables are left unchanged."
        )
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
        **executor_report(spark, pythons),
    }


if __name__ == "__main__":
    run_job("compaction", CompactParams, run)
