"""The derivatives job for one upload date: what to make, making it, and the manifest.

- To do: the ``processed`` images of the day (``curated/image_metadata``,
  read by the exactly-once rule) that the day's manifest
  (``curated/derivatives``) does not yet show as done in every configured
  size and format. A forced run takes them all.
- Per image (in a Spark task): if every output object exists and the run is
  not forced, they are kept as they are (a re-run after a crash);
  otherwise the source is decoded once and every output written under its
  deterministic key. Then the catalog gets the keys. A source that is
  missing, empty or corrupt gives ``failed`` rows with the reason.
- Manifest: one file per source metadata batch,
  ``curated/derivatives/dt=<day>/<batch_id>.parquet``, written after the
  objects and the catalog, merged with what the file already holds. It is the
  job's commit record: an image without manifest rows is done again by the
  next run, reusing whatever objects a killed run left.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from imagelake.batch.job_params import JobParams
from imagelake.catalog import Catalog, CatalogUnavailable
from imagelake.images.render import EXTENSIONS, DerivativeError, DerivativeSpec, render, target_dimensions
from imagelake.lake import layout
from imagelake.lake.read_rule import exactly_once, first_per_image
from imagelake.lake.schemas import SCHEMAS
from imagelake.lake.store import Lake, ObjectMissing
from imagelake.lake.tables import WrittenFile, day_files, read_table_file, rows_to_table, write_batch_table

#: Failures worth retrying on the next run (the image itself was fine).
TRANSIENT_ERRORS: tuple[str, ...] = ("catalog unavailable",)


@dataclass(frozen=True)
class DeriveParams(JobParams):
    """Everything a derivatives run needs; travels to Spark as Pipes extras (plain JSON)."""

    lake_url: str
    dt: str
    sizes: tuple[int, ...]
    formats: tuple[str, ...]
    max_pixels: int
    run_id: str
    s3_endpoint: str = ""
    region: str = "us-east-1"
    catalog_table: str = ""
    catalog_endpoint: str = ""
    force: bool = False
    #: Only these images of the day, made again whatever the manifest says (empty: the day's to-do).
    image_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        layout.parse_dt(f"dt={self.dt}")
        # Ids as an operator pastes them: any case (Crockford base32), as the API reads them.
        object.__setattr__(self, "image_ids", tuple(layout.canonical_image_id(i) for i in self.image_ids))

    @property
    def spec(self) -> DerivativeSpec:
        return DerivativeSpec(sizes=tuple(self.sizes), formats=tuple(self.formats))

    def catalog(self) -> Catalog | None:
        return Catalog(self.catalog_table, self.catalog_endpoint, self.region) if self.catalog_table else None


@dataclass(frozen=True)
class SourceImage:
    image_id: str
    key: str
    sha256: str
    width: int
    height: int
    uploaded_at: datetime
    batch_id: str


def read_day(lake: Lake, table_name: str, dt: str) -> pa.Table:
    """Every row of one day of a table, by the exactly-once read rule."""
    tables = [read_table_file(lake, table_name, o.key) for o in day_files(lake, table_name, dt)]
    if not tables:
        return SCHEMAS[table_name].empty_table()
    return exactly_once(pa.concat_tables(tables), table_name)


def day_totals(manifest: pa.Table) -> dict[str, int]:
    """What a day's manifest (read by the exactly-once rule) says is done, whatever run did it:
    a run with nothing left to do still reports the day's state, not zeros."""
    rows = manifest.to_pylist()
    written = [r for r in rows if r["status"] == "written"]
    return {
        "day_images_with_derivatives": len({r["image_id"] for r in written}),
        "day_derivatives": len(written),
        "day_derivative_bytes": sum(r["size_bytes"] or 0 for r in written),
        "day_images_failed": len({r["image_id"] for r in rows if r["status"] == "failed"}),
    }


def processed_images(metadata: pa.Table) -> list[SourceImage]:
    """The day's processed images, one per image id (the read rule's row, as dbt staging keeps it)."""
    first = first_per_image(metadata.to_pylist())
    return [
        SourceImage(
            r["image_id"], r["key"], r["sha256"], r["width"], r["height"], r["uploaded_at"], r["batch_id"]
        )
        for r in first.values()
        if r["status"] == "processed" and r["width"] and r["height"]
    ]


def done_images(manifest: pa.Table, spec: DerivativeSpec) -> set[str]:
    """Images whose manifest rows cover every size and format (written, or failed for good)."""
    covered: dict[str, set[tuple[int, str]]] = defaultdict(set)
    for row in manifest.to_pylist():
        transient = row["status"] == "failed" and (row["error"] or "").startswith(TRANSIENT_ERRORS)
        if not transient:
            covered[row["image_id"]].add((row["size"], row["format"]))
    wanted = {(s, f) for s in spec.sizes for f in spec.formats}
    return {image_id for image_id, have in covered.items() if wanted <= have}


class NotOnThisDay(ValueError):
    """Images asked for by id that are not processed images of the day."""


def images_to_derive(
    lake: Lake,
    dt: str,
    spec: DerivativeSpec,
    force: bool,
    only: tuple[str, ...] = (),
    manifest: pa.Table | None = None,
) -> list[SourceImage]:
    """The day's images without every derivative (all of them if ``force``), or exactly
    the images ``only`` names, made again: how an operator recovers one image.
    ``manifest``: the day's derivatives as :func:`read_day` reads them, if the caller has it."""
    images = processed_images(read_day(lake, layout.IMAGE_METADATA, dt))
    if only:
        wanted = set(only)
        chosen = [image for image in images if image.image_id in wanted]
        absent = sorted(wanted - {image.image_id for image in chosen})
        if absent:
            raise NotOnThisDay(
                f"not processed images of dt={dt}: {', '.join(absent)}. An image belongs to the day "
                "of its uploaded_at (UTC; GET /v1/images/<id> shows it), and only `processed` images "
                "have derivatives. Nothing was rendered."
            )
        return chosen
    if force:
        return images
    done = done_images(manifest if manifest is not None else read_day(lake, "derivatives", dt), spec)
    return [image for image in images if image.image_id not in done]


def _row(image: SourceImage, size: int, fmt: str, now: datetime, run_id: str, **values: object) -> dict:
    return {
        "image_id": image.image_id,
        "size": size,
        "format": fmt,
        "key": None,
        "width": None,
        "height": None,
        "size_bytes": None,
        "status": "written",
        "error": None,
        "source_sha256": image.sha256,
        "uploaded_at": image.uploaded_at,
        "created_at": now,
        "run_id": run_id,
        "first_written_at": now if values.get("status", "written") == "written" else None,
        "reused": False,  # not a manifest column: True when a previous run had written the object
        **values,
    }


def _existing(lake: Lake, image: SourceImage, spec: DerivativeSpec) -> dict[tuple[int, str], int] | None:
    """Sizes in bytes of every output if all exist (a previous, maybe killed, run wrote them)."""
    found = {}
    for size in spec.sizes:
        for fmt in spec.formats:
            info = lake.head(layout.derivative_key(size, image.image_id, EXTENSIONS[fmt]))
            if info is None:
                return None
            found[(size, fmt)] = info.size
    return found


def derive_image(
    lake: Lake, catalog: Catalog | None, image: SourceImage, params: DeriveParams, now: datetime
) -> list[dict]:
    """Manifest rows for one image, after writing its derivatives and catalog entry."""
    spec = params.spec
    existing = None if params.force else _existing(lake, image, spec)
    if existing is not None:
        rows = []
        for (size, fmt), nbytes in existing.items():
            width, height = target_dimensions(image.width, image.height, size)
            key = layout.derivative_key(size, image.image_id, EXTENSIONS[fmt])
            rows.append(
                _row(
                    image,
                    size,
                    fmt,
                    now,
                    params.run_id,
                    key=key,
                    width=width,
                    height=height,
                    size_bytes=nbytes,
                    reused=True,
                )
            )
    else:
        reason = None
        try:
            rendered = render(lake.get(image.key), spec, max_pixels=params.max_pixels)
        except ObjectMissing:
            reason = "missing: the raw object was deleted before its derivatives were made"
        except DerivativeError as exc:
            reason = exc.reason
        if reason is not None:
            if catalog is not None:
                with contextlib.suppress(CatalogUnavailable):  # the manifest has it; the GET may lack it
                    catalog.record_derivatives_failure(image.image_id, reason)
            return [
                _failed(image, s, f, now, params.run_id, reason) for s in spec.sizes for f in spec.formats
            ]
        rows = []
        for item in rendered:
            key = layout.derivative_key(item.size, image.image_id, item.ext)
            lake.put(key, item.data)
            rows.append(
                _row(
                    image,
                    item.size,
                    item.format,
                    now,
                    params.run_id,
                    key=key,
                    width=item.width,
                    height=item.height,
                    size_bytes=len(item.data),
                )
            )
    if catalog is not None:
        try:
            catalog.update(
                image.image_id, {"derivatives": catalog_derivatives(rows), "derivatives_error": None}
            )
        except CatalogUnavailable as exc:
            reason = f"catalog unavailable: {exc}"
            return [{**r, "status": "failed", "error": reason} for r in rows]
    return rows


def _failed(image: SourceImage, size: int, fmt: str, now: datetime, run_id: str, reason: str) -> dict:
    return _row(image, size, fmt, now, run_id, status="failed", error=reason)


def catalog_derivatives(rows: Iterable[dict]) -> dict[str, dict[str, str]]:
    """The catalog's ``derivatives`` attribute: ``{"<size>": {"<format>": "<key>"}}``."""
    entry: dict[str, dict[str, str]] = defaultdict(dict)
    for row in rows:
        if row["status"] == "written":
            entry[str(row["size"])][row["format"]] = row["key"]
    return dict(entry)


def derive_partition(params_extras: dict, images: Iterable[dict]) -> Iterator[dict]:
    """One Spark task: derivatives of a slice of the day's images (runs on an executor)."""
    params = DeriveParams.from_extras(params_extras)
    lake, catalog = params.lake(), params.catalog()
    now = datetime.now(UTC)
    for image in images:
        yield from derive_image(lake, catalog, SourceImage(**image), params, now)


def carry_first_writes(rows: list[dict], day: pa.Table) -> list[dict]:
    """``rows`` with the first write of each derivative as ``day`` (the manifest so far) knows it:
    a forced re-render replaces a row, not the moment the derivative first existed."""
    ids = pa.array(sorted({r["image_id"] for r in rows}), pa.string())
    mine = day.filter(pc.is_in(day["image_id"], value_set=ids))
    first: dict[tuple, datetime] = {}
    for r in mine.select(
        ["image_id", "size", "format", "status", "created_at", "first_written_at"]
    ).to_pylist():
        earliest = r.get("first_written_at") or (r["created_at"] if r["status"] == "written" else None)
        if earliest is not None:
            first[_identity(r)] = earliest
    return [
        {**row, "first_written_at": _earliest(first.get(_identity(row)), row["first_written_at"])}
        for row in rows
    ]


def _identity(row: dict) -> tuple:
    return row["image_id"], row["size"], row["format"]


def _earliest(*moments: datetime | None) -> datetime | None:
    return min((m for m in moments if m is not None), default=None)


def write_manifests(
    lake: Lake, dt: str, rows: list[dict], batch_of: dict[str, str], manifest: pa.Table
) -> tuple[list[WrittenFile], pa.Table]:
    """One manifest file per source metadata batch, merged with the rows it already holds.

    ``manifest`` is the day's as :func:`read_day` read it before this run; returned with the
    files is the day's as it reads now, without reading it again."""
    if not rows:
        return [], manifest
    rows = carry_first_writes(rows, manifest)
    new = rows_to_table("derivatives", rows)
    by_batch: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_batch[batch_of[row["image_id"]]].append(row)
    written = []
    for batch_id, batch_rows in sorted(by_batch.items()):
        key = layout.batch_file_key("derivatives", dt, batch_id)
        merged = rows_to_table("derivatives", batch_rows)
        if lake.exists(key):
            previous = read_table_file(lake, "derivatives", key)
            merged = pa.concat_tables([merged, previous])
        table = exactly_once(merged, "derivatives")
        written += write_batch_table(lake, "derivatives", batch_id, table.to_pylist(), [dt] * table.num_rows)
    return written, exactly_once(pa.concat_tables([new, manifest]), "derivatives")
