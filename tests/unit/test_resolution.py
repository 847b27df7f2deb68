"""Duplicate resolution converges on the same answers whatever order batches run and finish in."""

import random
import threading
import time
from datetime import UTC, date, datetime, timedelta

import duckdb
import pyarrow as pa
import pytest

from imagelake.batch.compaction import compact_day
from imagelake.images.phash import hamming, to_hex
from imagelake.lake import layout
from imagelake.lake.ids import new_image_id
from imagelake.lake.read_rule import exactly_once, exactly_once_sql
from imagelake.lake.store import Lake
from imagelake.lake.tables import day_files, read_batch_table, read_table_file
from imagelake.realtime.duplicate_resolution import metadata_key, settle
from imagelake.realtime.hash_index import MERGE_FAN_IN

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
WEEK = timedelta(days=7)
BASE = 0x5A5A_F00F_1234_8765


def meta(at: datetime, phash: int | None, batch: str, n: int) -> dict:
    """A full image_metadata row as extraction produces it (duplicate columns unset)."""
    image_id = new_image_id(int(at.timestamp() * 1000), n.to_bytes(10, "big"))
    processed = phash is not None
    return {
        "image_id": image_id,
        "client_id": "dev",
        "key": layout.raw_image_key(layout.dt_of(at), image_id),
        "status": "processed" if processed else "failed",
        "error": None if processed else "undecodable: broken",
        "sha256": f"{phash or n:064x}",  # equal hashes stand for equal bytes here
        "size_bytes": 100,
        "format": "JPEG" if processed else None,
        "width": 10 if processed else None,
        "height": 10 if processed else None,
        "phash": to_hex(phash) if processed else None,
        "uploaded_at": at,
        "processed_at": at + timedelta(seconds=5),
        "batch_id": batch,
    }


def oracle(rows: list[dict], threshold: int = 6) -> dict[str, str | None]:
    """Brute force: each image's earliest earlier duplicate within the window."""
    ordered = sorted(rows, key=lambda r: r["image_id"])
    answer = {}
    for q in ordered:
        answer[q["image_id"]] = next(
            (
                r["image_id"]
                for r in ordered
                if r["image_id"] < q["image_id"]
                and r["phash"]
                and q["phash"]
                and r["uploaded_at"] >= q["uploaded_at"] - WEEK
                and hamming(int(r["phash"], 16), int(q["phash"], 16)) <= threshold
            ),
            None,
        )
    return answer


def lake_answers(lake: Lake, batches: list[str]) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for batch in batches:
        for r in read_batch_table(lake, layout.IMAGE_METADATA, batch).to_pylist():
            assert r["image_id"] not in found, f"{r['image_id']} has two rows"
            found[r["image_id"]] = r["duplicate_of"]
    return found


def run(lake: Lake, batch: str, rows: list[dict]):
    return settle(lake, batch, rows, threshold=6, window=WEEK)


@pytest.fixture
def lake(tmp_path) -> Lake:
    return Lake((tmp_path / "lake").as_uri())


def scenario():
    """Three batches on three partitions: an original, its copies spread over the others."""
    a = meta(T0, BASE, "t-0-0-1", 1)
    unrelated = meta(T0 + timedelta(seconds=1), ~BASE & (2**64 - 1), "t-0-0-1", 2)
    copy = meta(T0 + timedelta(seconds=2), BASE, "t-1-0-1", 3)
    resized = meta(T0 + timedelta(seconds=3), BASE ^ 0b1011, "t-1-0-1", 4)
    near_of_copy = meta(T0 + timedelta(seconds=4), BASE ^ (0b111 << 40), "t-2-0-1", 5)
    broken = meta(T0 + timedelta(seconds=5), None, "t-2-0-1", 6)
    return {
        "t-0-0-1": [a, unrelated],
        "t-1-0-1": [copy, resized],
        "t-2-0-1": [near_of_copy, broken],
    }


def test_in_order_batches_find_duplicates_within_and_across_batches(lake):
    batches = scenario()
    for batch, rows in batches.items():
        run(lake, batch, rows)
    rows = {
        r["image_id"]: r for b in batches for r in read_batch_table(lake, "image_metadata", b).to_pylist()
    }
    a, _, copy, resized, near, broken = (r["image_id"] for b in batches.values() for r in b)
    assert (rows[copy]["duplicate_of"], rows[copy]["duplicate_kind"], rows[copy]["duplicate_distance"]) == (
        a,
        "exact",
        0,
    )
    assert (rows[resized]["duplicate_of"], rows[resized]["duplicate_kind"]) == (a, "near")
    assert rows[resized]["duplicate_distance"] == 3
    assert rows[near]["duplicate_of"] == a and rows[broken]["duplicate_of"] is None
    assert lake_answers(lake, list(batches)) == oracle([r for b in batches.values() for r in b])


def assert_corrected_the_later_batches(settled, batches) -> None:
    """The late original batch of scenario() rewrote both later batches' files and their three copies."""
    assert sorted(f.key for f in settled.corrected_files) == sorted(
        [metadata_key("t-1-0-1", "2026-11-24"), metadata_key("t-2-0-1", "2026-11-24")]
    )
    assert {r["image_id"] for r in settled.corrected if r["duplicate_of"]} == {
        batches["t-1-0-1"][0]["image_id"],
        batches["t-1-0-1"][1]["image_id"],
        batches["t-2-0-1"][0]["image_id"],
    }


def test_a_late_batch_corrects_batches_that_ran_before_it(lake):
    batches = scenario()
    late = "t-0-0-1"
    for batch in ["t-2-0-1", "t-1-0-1"]:
        run(lake, batch, batches[batch])
    before = lake_answers(lake, ["t-1-0-1", "t-2-0-1"])
    copy = batches["t-1-0-1"][0]["image_id"]
    assert before[copy] is None  # the original was not there yet
    assert_corrected_the_later_batches(run(lake, late, batches[late]), batches)
    assert lake_answers(lake, list(batches)) == oracle([r for b in batches.values() for r in b])
    corrected = read_batch_table(lake, "image_metadata", "t-1-0-1").to_pylist()
    assert [r["processed_at"] for r in corrected] == [r["processed_at"] for r in batches["t-1-0-1"]]


def read_rule_answers(lake: Lake) -> dict[str, str | None]:
    """Each image's duplicate_of as readers see it: every file of the table, the exactly-once read rule,
    in Python (compaction) and in SQL (dbt staging); the two must agree."""
    files = [
        f.key for f in lake.list(layout.table_prefix(layout.IMAGE_METADATA)) if f.key.endswith(".parquet")
    ]
    table = exactly_once(
        pa.concat_tables([read_table_file(lake, layout.IMAGE_METADATA, k) for k in files]),
        layout.IMAGE_METADATA,
    )
    python = dict(zip(table["image_id"].to_pylist(), table["duplicate_of"].to_pylist(), strict=True))
    root = lake.url.removeprefix("file://")
    sql = duckdb.sql(f"select image_id, duplicate_of from ({exactly_once_sql(layout.IMAGE_METADATA, root)})")
    assert dict(sql.fetchall()) == python
    return python


def test_a_late_batch_corrects_a_batch_that_compaction_already_folded(lake):
    """The later copies' day was compacted before the original arrived: the correction lands anyway."""
    batches = scenario()
    everything = [r for b in batches.values() for r in b]
    for batch in ["t-2-0-1", "t-1-0-1"]:
        run(lake, batch, batches[batch])
    compact_day(lake, layout.IMAGE_METADATA, "2026-11-24", target_bytes=1 << 27, today=date(2026, 11, 25))
    assert not lake.exists(metadata_key("t-1-0-1", "2026-11-24"))  # folded away
    copy = batches["t-1-0-1"][0]["image_id"]
    assert read_rule_answers(lake)[copy] is None

    # The folded batches' rows come back as their files, corrected, beside the stale compacted copies.
    assert_corrected_the_later_batches(run(lake, "t-0-0-1", batches["t-0-0-1"]), batches)
    assert read_rule_answers(lake) == oracle(everything)
    # The next compaction folds the corrections in; a re-run of the late batch then changes nothing.
    compact_day(lake, layout.IMAGE_METADATA, "2026-11-24", target_bytes=1 << 27, today=date(2026, 11, 25))
    assert all(layout.is_compacted_key(f.key) for f in day_files(lake, layout.IMAGE_METADATA, "2026-11-24"))
    assert read_rule_answers(lake) == oracle(everything)
    assert run(lake, "t-0-0-1", batches["t-0-0-1"]).corrected_files == []
    assert read_rule_answers(lake) == oracle(everything)


class GatedLake(Lake):
    """A real local lake that holds one put until the test opens the gate."""

    def __init__(self, url: str, hold_key: str) -> None:
        super().__init__(url)
        self.hold_key = hold_key
        self.reached = threading.Event()
        self.gate = threading.Event()

    def put(self, key, data, *, create_only=False):
        if key == self.hold_key and not self.gate.is_set():
            self.reached.set()
            assert self.gate.wait(30), "gate never opened"
        super().put(key, data, create_only=create_only)


def test_a_batch_that_read_the_index_too_early_fixes_itself_after_writing(tmp_path):
    """B reads the index before A's segment exists; A finds B's file not yet written; B's re-check fixes B."""
    batches = scenario()
    hold = metadata_key("t-1-0-1", "2026-11-24")
    gated = GatedLake((tmp_path / "lake").as_uri(), hold)
    result = {}
    worker = threading.Thread(
        target=lambda: result.setdefault("b", run(gated, "t-1-0-1", batches["t-1-0-1"]))
    )
    worker.start()
    assert gated.reached.wait(30)  # B has written its segment, read the index and computed: no original
    settled_a = run(Lake(gated.url), "t-0-0-1", batches["t-0-0-1"])
    assert settled_a.corrected_files == []  # B's file does not exist yet: left to B
    gated.gate.set()
    worker.join(30)
    assert result["b"].rounds == 2  # B saw A's segment after writing, and rewrote its file
    answers = lake_answers(gated, ["t-0-0-1", "t-1-0-1"])
    assert answers == oracle(batches["t-0-0-1"] + batches["t-1-0-1"])
    assert answers[batches["t-1-0-1"][0]["image_id"]] == batches["t-0-0-1"][0]["image_id"]


class JitteryLake(Lake):
    """A real local lake whose every operation takes a random few milliseconds."""

    def __init__(self, url: str, seed: int) -> None:
        super().__init__(url)
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def _pause(self) -> None:
        with self._lock:
            delay = self._random.random() * 0.01
        time.sleep(delay)

    def put(self, key, data, *, create_only=False):
        self._pause()
        super().put(key, data, create_only=create_only)
        self._pause()

    def get(self, key):
        self._pause()
        return super().get(key)

    def list(self, prefix):
        self._pause()
        return super().list(prefix)


@pytest.mark.parametrize("seed", range(6))
def test_concurrent_batches_converge_on_the_oracle(tmp_path, seed):
    rng = random.Random(seed)
    rows_by_batch: dict[str, list[dict]] = {}
    originals = [rng.getrandbits(64) for _ in range(4)]
    for n in range(24):
        batch = f"t-{n % 4}-{n // 4}-{n // 4}"
        at = T0 + timedelta(seconds=rng.randint(0, 600))
        h = rng.choice(originals) ^ (1 << rng.randrange(64) if rng.random() < 0.5 else 0)
        rows_by_batch.setdefault(batch, []).append(meta(at, h, batch, n))
    lake = JitteryLake((tmp_path / "lake").as_uri(), seed)
    threads = [threading.Thread(target=run, args=(lake, b, rows)) for b, rows in rows_by_batch.items()]
    rng.shuffle(threads)
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    all_rows = [r for rows in rows_by_batch.values() for r in rows]
    assert lake_answers(lake, list(rows_by_batch)) == oracle(all_rows)


def test_a_rerun_rewrites_identical_bytes(lake):
    batches = scenario()
    for batch, rows in batches.items():
        run(lake, batch, rows)
    before = {o.key: lake.get(o.key) for o in lake.list("curated")}
    for batch, rows in reversed(list(batches.items())):
        run(lake, batch, rows)
    assert {o.key: lake.get(o.key) for o in lake.list("curated")} == before


@pytest.mark.parametrize("order", ["first-delivery-first", "second-delivery-first", "concurrent"])
def test_an_image_delivered_in_two_batches_has_one_row(lake, order):
    first = meta(T0, BASE, "t-0-3-4", 1)
    other = meta(T0 + timedelta(seconds=1), 0x1111, "t-0-3-4", 2)
    again = {**first, "batch_id": "t-0-10-10", "processed_at": T0 + timedelta(minutes=1)}
    jobs = [("t-0-3-4", [first, other]), ("t-0-10-10", [again])]
    if order == "second-delivery-first":
        jobs.reverse()
    if order == "concurrent":
        threads = [threading.Thread(target=run, args=(lake, b, r)) for b, r in jobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    else:
        for batch, rows in jobs:
            run(lake, batch, rows)
    assert read_batch_table(lake, "image_metadata", "t-0-10-10").num_rows == 0
    kept = read_batch_table(lake, "image_metadata", "t-0-3-4").to_pylist()
    assert [r["image_id"] for r in kept] == [first["image_id"], other["image_id"]]
    assert kept[0]["processed_at"] == first["processed_at"]


def test_a_batch_of_dead_letters_only_writes_nothing(lake):
    settled = run(lake, "t-0-0-0", [])
    assert settled.rows == [] and settled.files == [] and list(lake.list("curated")) == []


@pytest.mark.parametrize("seed", range(2))
def test_many_concurrent_batches_converge_while_runs_merge_the_index(tmp_path, seed):
    """More batches than MERGE_FAN_IN: runs merge the day's index files while others read it."""
    rng = random.Random(100 + seed)
    originals = [rng.getrandbits(64) for _ in range(5)]
    rows_by_batch = {}
    for n in range(MERGE_FAN_IN + 12):
        batch = f"t-{n % 3}-{n}-{n}"
        at = T0 + timedelta(seconds=rng.randint(0, 600))
        rows_by_batch[batch] = [meta(at, rng.choice(originals) ^ (1 << rng.randrange(64)), batch, n)]
    lake = JitteryLake((tmp_path / "lake").as_uri(), seed)
    threads = [threading.Thread(target=run, args=(lake, b, rows)) for b, rows in rows_by_batch.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert lake_answers(lake, list(rows_by_batch)) == oracle(
        [r for rows in rows_by_batch.values() for r in rows]
    )
    files = [o.key for o in lake.list(layout.HASH_INDEX_PREFIX)]
    assert len(files) < len(rows_by_batch) and any("/merged-" in k for k in files)
