"""Spark job: garbage collection and retention over one snapshot of the whole lake.

The driver lists every zone once (the snapshot) and plans; executors read the
upload events that decide which old raw images were never announced, and
delete in parallel. A dry run plans and reports without deleting or writing.
The storage inventory (what remains, per zone, prefix and date) is written
from the same listing.
"""

from __future__ import annotations

import time
from functools import partial

import pyarrow as pa
import pyarrow.parquet as pq

from imagelake.batch import garbage_collection
from imagelake.batch.garbage_collection import GcParams
from imagelake.catalog import Catalog
from imagelake.lake import layout
from imagelake.lake.store import ObjectMissing
from imagelake.lake.tables import write_batch_table
from spark_jobs.executors import executor_report, on_executors
from spark_jobs.sessions import run_job, slices

#: How many keys a dry run lists in its report.
PREVIEW_KEYS = 200


def _announced(extras: dict, candidates: frozenset[str], keys) -> list[tuple[str, bool]]:
    """(image id, True) for candidates an events file names; ("", False) if a file vanished."""
    lake = GcParams.from_extras(extras).lake()
    found: list[tuple[str, bool]] = []
    for key in keys:
        try:
            data = lake.get(key)
        except ObjectMissing:
            found.append(("", False))  # compacted away meanwhile: references are incomplete
            continue
        ids = pq.read_table(pa.BufferReader(data), columns=["image_id"])["image_id"].to_pylist()
        found.extend((i, True) for i in set(ids) & candidates)
    return found


def _delete(extras: dict, keys) -> list[int]:
    lake = GcParams.from_extras(extras).lake()
    deleted = 0
    for key in keys:
        lake.delete(key)
        deleted += 1
    return [deleted]


def run(spark, params: GcParams, log) -> dict:
    started = time.monotonic()
    policy = params.policy()
    lake = params.lake()
    objects = [info for prefix in garbage_collection.GC_PREFIXES for info in lake.list(prefix)]
    log.info(f"snapshot: {len(objects)} objects; {policy.describe()}")

    context = spark.sparkContext
    candidates = frozenset(garbage_collection.failed_upload_candidates(objects, policy))
    references_complete = True
    unannounced: set[str] = set()
    pythons: list[dict] = []
    if candidates:
        # Listed after the snapshot: batches archived meanwhile count as references too.
        events = [
            o.key for o in lake.list(layout.table_prefix("upload_events")) if o.key.endswith(".parquet")
        ]
        found: list[tuple[str, bool]] = []
        if events:
            found, pythons = on_executors(
                context.parallelize(events, slices(len(events), context.defaultParallelism)),
                partial(_announced, params.to_extras(), candidates),
            )
        references_complete = all(ok for _, ok in found)
        unannounced = set(candidates) - {i for i, ok in found if ok}
        if not references_complete:
            log.warning(
                "an events file vanished while it was read (compaction?): no failed upload is collected"
            )
            unannounced = set()
    held = params.failed_uploads_held or ("" if params.catalog_table else "no image catalog to ask")
    acknowledged = 0
    if held:
        if unannounced:
            log.warning(f"{len(unannounced)} unannounced raw image(s) kept: failed uploads are held ({held})")
        unannounced = set()
    elif unannounced:
        # Read after the listing too: an upload's item is written before its event, so an accepted
        # upload in this snapshot has its item by now.
        items = Catalog(params.catalog_table, params.catalog_endpoint, params.region).get_many(
            unannounced, consistent=True
        )
        failed = garbage_collection.unacknowledged(unannounced, items)
        acknowledged = len(unannounced) - len(failed)
        if acknowledged:
            log.info(f"{acknowledged} unannounced raw image(s) kept: their uploads were accepted")
        unannounced = failed

    doomed = garbage_collection.plan(objects, unannounced, policy)
    if doomed and not params.dry_run:
        keys = [d.key for d in doomed]
        _, deleting = on_executors(
            context.parallelize(keys, slices(len(keys), context.defaultParallelism)),
            partial(_delete, params.to_extras()),
        )
        pythons += deleting
    summary = garbage_collection.summarize(doomed)
    for reason, counts in summary.items():
        if counts["objects"]:
            verb = "would delete" if params.dry_run else "deleted"
            log.info(f"{reason}: {verb} {counts['objects']} objects, {counts['bytes']} bytes")

    inventory_file = None
    if not params.dry_run:
        gone = {d.key for d in doomed}
        rows = garbage_collection.inventory_rows(objects, gone, policy.now)
        if rows:
            files = write_batch_table(
                lake,
                "storage_inventory",
                garbage_collection.snapshot_id(policy.now),
                rows,
                [layout.dt_of(policy.now)] * len(rows),
            )
            inventory_file = files[0].key
    return {
        "dry_run": params.dry_run,
        "listed_objects": len(objects),
        "listed_bytes": sum(o.size for o in objects),
        "deleted_objects": 0 if params.dry_run else len(doomed),
        "deleted_bytes": 0 if params.dry_run else sum(d.size for d in doomed),
        "would_delete_objects": len(doomed),
        "would_delete_bytes": sum(d.size for d in doomed),
        "by_reason": summary,
        "retention_cutoff": policy.cutoff.isoformat(),
        "grace_hours": params.grace_hours,
        "references_complete": references_complete,
        "failed_upload_candidates": len(candidates),
        "kept_as_accepted_uploads": acknowledged,
        "failed_uploads_held": held or "no",
        "inventory_file": inventory_file,
        "files": [inventory_file] if inventory_file else [],  # none on a dry run: no warehouse refresh
        "keys": [{"key": d.key, "reason": d.reason, "bytes": d.size} for d in doomed[:PREVIEW_KEYS]],
        "duration_s": round(time.monotonic() - started, 3),
        **executor_report(spark, pythons),
    }


if __name__ == "__main__":
    run_job("garbage-collection", GcParams, run)
