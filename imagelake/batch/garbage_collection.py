"""Garbage collection and 7-day retention, planned from one snapshot of the lake.

The snapshot is one listing of every zone, taken first; references are read
after it, so anything written meanwhile can only add references (never make
a listed object look unreferenced) and anything uploaded meanwhile is not in
the listing at all. An object goes when:

- ``expired``: its data date (the ``dt=`` of its key, or the upload moment
  inside the image id of a derivative) is older than the retention period;
  objects whose keys carry no date expire by their write time.
- ``expired_dead_letter``: the same, for ``raw/dead_letters`` (kept apart in
  the counts because they are the evidence of bad input).
- ``failed_upload``: a raw image older than the grace period that no
  archived upload event names *and* no acknowledged upload stands behind: the
  catalog has no item for it, or its item says ``refused`` (the API stored it,
  then refused the upload). An accepted upload whose batch has not run yet (a
  failed run, a backlog, Kafka out of reach) has its ``accepted`` item, so it
  stays. And while the real-time backlog could still hold events (a failed or
  waiting batch run, the Kafka sensor's lag, or a lag not known), no failed
  upload is collected at all (:attr:`GcParams.failed_uploads_held`).
- ``orphan_derivative``: a derivative older than the grace period whose
  source image is not in the lake.

Nothing younger than the grace period is ever collected as unreferenced.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from imagelake.batch.job_params import JobParams
from imagelake.catalog import REFUSED
from imagelake.lake import layout
from imagelake.lake.ids import image_id_time
from imagelake.lake.store import ObjectInfo

EXPIRED = "expired"
EXPIRED_DEAD_LETTER = "expired_dead_letter"
FAILED_UPLOAD = "failed_upload"
ORPHAN_DERIVATIVE = "orphan_derivative"
REASONS: tuple[str, ...] = (EXPIRED, EXPIRED_DEAD_LETTER, FAILED_UPLOAD, ORPHAN_DERIVATIVE)

#: The zones garbage collection lists: everything the lake holds.
GC_PREFIXES: tuple[str, ...] = tuple(f"{zone}/" for zone in layout.ZONES)


def oldest_day_kept(now: datetime, retention_days: int) -> date:
    """The oldest upload date the lake keeps: days before it are older than the retention
    period; this one still holds images younger than it (the warehouse's per-image detail
    keeps the same days, dbt_project/macros/windows.sql)."""
    return (now - timedelta(days=retention_days)).astimezone(UTC).date()


@dataclass(frozen=True)
class GcPolicy:
    """When things go: the retention (the one setting) and the grace period, from one ``now``."""

    now: datetime
    retention_days: int
    grace: timedelta

    def __post_init__(self) -> None:
        if self.now.tzinfo is None:
            raise ValueError("GcPolicy.now must be timezone-aware (UTC)")
        if self.grace >= timedelta(days=self.retention_days):
            raise ValueError("the grace period must be shorter than the retention period")

    def describe(self) -> str:
        """The policy as a log line says it: ``retention 7 days (cutoff 2026-11-26), grace 24 h``."""
        hours = self.grace.total_seconds() / 3600
        grace = f"{hours:g} h" if hours >= 1 else f"{self.grace.total_seconds():g} s"
        return f"retention {self.retention_days} days (cutoff {self.cutoff}), grace {grace}"

    @property
    def cutoff(self) -> date:
        return oldest_day_kept(self.now, self.retention_days)

    def is_young(self, info: ObjectInfo) -> bool:
        return self.now - info.last_modified < self.grace


@dataclass(frozen=True)
class Doomed:
    key: str
    size: int
    reason: str


def data_date(key: str) -> date | None:
    """The upload date an object belongs to, if its key tells."""
    derivative = layout.parse_derivative_key(key)
    if derivative is not None:
        return image_id_time(derivative[1]).date()
    try:
        return layout.parse_dt(key)
    except layout.LayoutError:
        return None


def expired(info: ObjectInfo, policy: GcPolicy) -> bool:
    day = data_date(info.key)
    if day is not None:
        return day < policy.cutoff
    return info.last_modified < policy.now - timedelta(days=policy.retention_days)


def failed_upload_candidates(objects: Iterable[ObjectInfo], policy: GcPolicy) -> set[str]:
    """Image ids of raw images old enough to be collected if no event names them."""
    ids = set()
    for info in objects:
        raw = layout.parse_raw_image_key(info.key)
        if raw is not None and not policy.is_young(info) and not expired(info, policy):
            ids.add(raw[1])
    return ids


def unacknowledged(candidates: set[str], items: dict[str, dict]) -> set[str]:
    """The candidates no acknowledged upload stands behind: no catalog item, or a refused one."""
    return {i for i in candidates if i not in items or items[i].get("status") == REFUSED}


def plan(objects: list[ObjectInfo], unannounced: set[str], policy: GcPolicy) -> list[Doomed]:
    """What goes, from the snapshot and the candidates that no upload event named."""
    sources = {raw[1] for o in objects if (raw := layout.parse_raw_image_key(o.key)) is not None}
    doomed = []
    for info in objects:
        if expired(info, policy):
            dead = info.key.startswith(layout.RAW_DEAD_LETTERS + "/")
            doomed.append(Doomed(info.key, info.size, EXPIRED_DEAD_LETTER if dead else EXPIRED))
            continue
        if policy.is_young(info):
            continue
        raw = layout.parse_raw_image_key(info.key)
        if raw is not None and raw[1] in unannounced:
            doomed.append(Doomed(info.key, info.size, FAILED_UPLOAD))
            continue
        derivative = layout.parse_derivative_key(info.key)
        if derivative is not None and derivative[1] not in sources:
            doomed.append(Doomed(info.key, info.size, ORPHAN_DERIVATIVE))
    return doomed


@dataclass(frozen=True)
class GcParams(JobParams):
    """One garbage-collection run; travels to Spark as Pipes extras."""

    lake_url: str
    retention_days: int
    grace_hours: float
    dry_run: bool = False
    s3_endpoint: str = ""
    region: str = "us-east-1"
    #: ISO timestamp standing for "now" (tests replay a seeded lake); empty means the clock.
    now: str = ""
    #: The image catalog, which tells whether an acknowledged upload stands behind a raw image.
    #: Without one, no failed upload is collected.
    catalog_table: str = ""
    catalog_endpoint: str = ""
    #: Why failed uploads are not collected this run (the real-time backlog); empty: they are.
    failed_uploads_held: str = ""

    def policy(self) -> GcPolicy:
        now = datetime.fromisoformat(self.now) if self.now else datetime.now(UTC)
        return GcPolicy(now, self.retention_days, timedelta(hours=self.grace_hours))


def summarize(doomed: list[Doomed]) -> dict[str, dict[str, int]]:
    """Objects and bytes per reason (every reason present, zero when nothing went)."""
    objects = Counter(d.reason for d in doomed)
    sizes: Counter[str] = Counter()
    for d in doomed:
        sizes[d.reason] += d.size
    return {r: {"objects": objects[r], "bytes": sizes[r]} for r in REASONS}


def inventory_prefix(key: str) -> tuple[str, str]:
    """``(zone, prefix)`` an object is counted under in the storage inventory."""
    for prefix in (*layout.TABLE_PREFIXES.values(), layout.HASH_INDEX_PREFIX):
        if key.startswith(prefix):
            return prefix.split("/", 1)[0], prefix.rstrip("/")
    if key.startswith(layout.RAW_IMAGES + "/"):
        return "raw", layout.RAW_IMAGES
    derivative = layout.parse_derivative_key(key)
    if derivative is not None:
        return layout.DERIVATIVES, f"{layout.DERIVATIVES}/{derivative[0]}"
    return key.split("/", 1)[0], key.rsplit("/", 1)[0] if "/" in key else key


def inventory_rows(objects: list[ObjectInfo], gone: set[str], snapshot_at: datetime) -> list[dict]:
    """``storage_inventory`` rows: what the lake holds after the collection, per zone/prefix/date."""
    counts: dict[tuple[str, str, date | None], list[int]] = defaultdict(lambda: [0, 0])
    for info in objects:
        if info.key in gone:
            continue
        zone, prefix = inventory_prefix(info.key)
        cell = counts[(zone, prefix, data_date(info.key))]
        cell[0] += 1
        cell[1] += info.size
    return [
        {
            "snapshot_at": snapshot_at,
            "zone": zone,
            "prefix": prefix,
            "data_date": day,
            "objects": n,
            "bytes": size,
        }
        for (zone, prefix, day), (n, size) in sorted(
            counts.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or date.min)
        )
    ]


def snapshot_id(snapshot_at: datetime) -> str:
    """The batch id of one GC run's inventory file."""
    return f"gc-{snapshot_at.astimezone(UTC):%Y%m%dT%H%M%SZ}"
