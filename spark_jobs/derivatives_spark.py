"""Spark job: every configured size and format for the processed images of one upload date.

Dagster passes a :class:`imagelake.batch.day_derivatives.DeriveParams` as Pipes extras. The
driver plans (which images lack derivatives), the executors decode, resize,
encode and write (one decode per image), the driver writes the manifest and
reports counts back through Pipes.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict
from functools import partial

from imagelake.batch.day_derivatives import (
    TRANSIENT_ERRORS,
    DeriveParams,
    day_totals,
    derive_partition,
    images_to_derive,
    read_day,
    write_manifests,
)
from spark_jobs.executors import executor_report, on_executors
from spark_jobs.sessions import run_job, slices


class DerivativesIncomplete(RuntimeError):
    """The run wrote what it could (objects and manifest), but some images still lack their
    derivatives in a way the operator must hear of: the step fails, so it is retried or seen."""


class RequestedImagesFailed(DerivativesIncomplete):
    """Images the operator named could not be made: retrying cannot help until the cause is fixed."""


def unfinished(params: DeriveParams, failures: list[tuple[str, str]]) -> DerivativesIncomplete | None:
    """The error the run fails with although it wrote its manifest, or None.

    A catalog outage is passing: failing the step gets it retried in a few seconds (the
    outage's images are not done, so the retry takes them again). Images an operator named
    (``image_ids``) that failed: they asked for exactly those, so a green run would mislead.
    """
    transient = sorted({i for i, reason in failures if reason.startswith(TRANSIENT_ERRORS)})
    if transient:
        return DerivativesIncomplete(
            f"dt={params.dt}: the image catalog was unavailable for {len(transient)} image(s) (first: "
            f"{transient[0]}): their derivatives are written, their keys not yet in the catalog. The step "
            "is retried; if DynamoDB stays away, the next derivatives run (hourly) completes them."
        )
    if params.image_ids and failures:
        reasons = "; ".join(f"{i}: {reason}" for i, reason in failures[:5])
        return RequestedImagesFailed(
            f"dt={params.dt}: {len({i for i, _ in failures})} of the images asked for (image_ids) got no "
            f"derivatives: {reasons}"
        )
    return None


def run(spark, params: DeriveParams, log) -> dict:
    """Derive one day; returns the summary reported as materialization metadata."""
    started = time.monotonic()
    lake = params.lake()
    manifest = read_day(lake, "derivatives", params.dt)  # read once: planning, carrying first writes, totals
    todo = images_to_derive(lake, params.dt, params.spec, params.force, params.image_ids, manifest)
    log.info(f"dt={params.dt}: {len(todo)} image(s) need derivatives {params.sizes} x {params.formats}")
    planned = time.monotonic()
    rows: list[dict] = []
    pythons: list[dict] = []
    if todo:
        context = spark.sparkContext
        images = context.parallelize([asdict(i) for i in todo], slices(len(todo), context.defaultParallelism))
        rows, pythons = on_executors(images, partial(derive_partition, params.to_extras()))
    rendered = time.monotonic()
    batch_of = {i.image_id: i.batch_id for i in todo}
    manifests, manifest = write_manifests(lake, params.dt, rows, batch_of, manifest)
    written = [r for r in rows if r["status"] == "written"]
    failed = [r for r in rows if r["status"] == "failed"]
    failures = sorted({(r["image_id"], r["error"]) for r in failed})
    failed_images = {image_id for image_id, _ in failures}
    for image_id, reason in failures:
        log.warning(f"image {image_id}: no derivatives: {reason}")
    day = day_totals(manifest)
    log.info(
        f"dt={params.dt}: {len(written)} derivatives for {len(todo)} images, "
        f"{len(failed_images)} failed, in {time.monotonic() - started:.1f} s; the day now has "
        f"{day['day_derivatives']} derivatives of {day['day_images_with_derivatives']} images"
    )
    if (error := unfinished(params, failures)) is not None:
        raise error
    return {
        "dt": params.dt,
        **day,
        "images": len(todo),
        "images_failed": len(failed_images),
        "derivatives_written": len(written),
        "derivative_bytes": sum(r["size_bytes"] or 0 for r in written),
        "by_size": dict(sorted(Counter(str(r["size"]) for r in written).items())),
        "reused": sum(1 for r in written if r["reused"]),
        "files": [m.key for m in manifests],  # the lake table files written: what the warehouse reads
        "failures": [{"image_id": i, "reason": r} for i, r in failures[:20]],
        "plan_s": round(planned - started, 3),
        "render_s": round(rendered - planned, 3),
        "duration_s": round(time.monotonic() - started, 3),
        **executor_report(spark, pythons),
    }


if __name__ == "__main__":
    run_job("derivatives", DeriveParams, run)
