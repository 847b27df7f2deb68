"""The duplicate index: definitions, vectorised search against a brute-force oracle, ownership."""

import hashlib
import io
import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from imagelake.images.facts import describe
from imagelake.images.phash import hamming, to_hex
from imagelake.lake import layout
from imagelake.lake.ids import new_image_id
from imagelake.lake.schemas import HASH_INDEX
from imagelake.lake.store import Lake
from imagelake.lake.tables import CorruptLakeFile
from imagelake.realtime.hash_index import (
    FLAT_CONTRAST,
    MERGE_FAN_IN,
    HashIndex,
    Match,
    index_rows,
    match_hash,
    merge_day,
    segment_keys,
    to_signed,
    write_segment,
)
from tests.support import sample_images as images

T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
WEEK = timedelta(days=7)


def image_id(at: datetime, n: int = 0) -> str:
    return new_image_id(int(at.timestamp() * 1000), n.to_bytes(10, "big"))


def row(at: datetime, phash: int | None, batch: str = "t-0-0-9", n: int = 0, sha: str | None = None) -> dict:
    """An image_metadata row with just what the index reads."""
    return {
        "image_id": image_id(at, n),
        "client_id": "dev",
        "uploaded_at": at,
        "status": "processed" if phash is not None else "failed",
        "error": None if phash is not None else "undecodable: broken",
        "sha256": sha or f"{n:064x}",
        "phash": to_hex(phash) if phash is not None else None,
        "batch_id": batch,
    }


def index_of(*rows: dict) -> HashIndex:
    tables: dict[str, list[dict]] = {}
    for r in rows:
        tables.setdefault(r["batch_id"], []).append(r)
    return HashIndex({b: pa.Table.from_pylist(index_rows(rs), schema=HASH_INDEX) for b, rs in tables.items()})


def earliest(index: HashIndex, r: dict, threshold: int = 6):
    return index.earliest_match(
        r["image_id"], r["uploaded_at"], int(r["phash"], 16), r["sha256"], threshold, WEEK
    )


def test_the_earliest_match_wins_and_the_threshold_is_inclusive():
    base = 0x0F0F_0F0F_0F0F_0F0F
    first = row(T0, base ^ 0b111111, n=1)  # 6 bits away: a match
    second = row(T0 + timedelta(seconds=1), base, n=2, sha="ab" * 32)  # exact copy of the query
    too_far = row(T0 - timedelta(seconds=1), base ^ (0b1111111 << 20), n=3)  # 7 bits: no match
    query = row(T0 + timedelta(seconds=2), base, n=4, sha="ab" * 32)
    index = index_of(first, second, too_far, query)
    match = earliest(index, query)
    assert (match.duplicate_of, match.kind, match.distance) == (first["image_id"], "near", 6)
    assert earliest(index, second).duplicate_of == first["image_id"]
    assert earliest(index, first) is None  # nothing earlier within 6 bits
    assert earliest(index, query, threshold=0).kind == "exact"  # same bytes: distance 0, any threshold


def test_only_earlier_images_within_the_window_and_with_a_hash_count():
    h = 0x1234_5678_9ABC_DEF0
    old = row(T0 - WEEK - timedelta(seconds=1), h, n=1)
    unhashed = row(T0 - timedelta(hours=1), None, n=2)
    later = row(T0 + timedelta(hours=1), h, n=3)
    query = row(T0, h, n=4)
    index = index_of(old, unhashed, later, query)
    assert earliest(index, query) is None
    assert [m.image_id for m in index.later_matches(query["image_id"], T0, h, 6, WEEK)] == [later["image_id"]]
    edge = row(T0 - WEEK, h, n=5)  # exactly 7 days earlier is still inside the window
    assert earliest(index_of(edge, query), query).duplicate_of == edge["image_id"]


def test_an_image_seen_by_two_batches_belongs_to_the_smallest():
    a = row(T0, 0xAAAA, batch="t-0-9-9", n=1)
    again = {**a, "batch_id": "t-0-10-12"}  # "10" sorts before "9" as text; offsets decide
    other_partition = {**a, "batch_id": "t-1-0-0"}
    index = index_of(again, a, other_partition)
    assert index.owner(a["image_id"]) == "t-0-9-9"
    assert len(index) == 1
    assert index.owner(image_id(T0, 99)) is None


def test_vectorised_search_agrees_with_a_brute_force_oracle():
    rng = np.random.default_rng(7)
    rows = []
    for n in range(3000):
        at = T0 + timedelta(seconds=int(rng.integers(0, 10 * 86400)))
        if rows and rng.random() < 0.3:  # a near copy of an earlier random image
            src = rows[int(rng.integers(0, len(rows)))]
            flips = rng.choice(64, size=int(rng.integers(0, 9)), replace=False)
            h = int(src["phash"], 16)
            for bit in flips:
                h ^= 1 << int(bit)
        else:
            h = int(rng.integers(0, 2**64, dtype=np.uint64))
        rows.append(row(at, h, batch=f"t-{n % 3}-{n}-{n}", n=n))
    index = index_of(*rows)
    ordered = sorted(rows, key=lambda r: r["image_id"])
    for q in rng.choice(len(rows), size=300, replace=False):
        query = rows[int(q)]
        expected = next(
            (
                r["image_id"]
                for r in ordered
                if r["image_id"] < query["image_id"]
                and r["uploaded_at"] >= query["uploaded_at"] - WEEK
                and hamming(int(r["phash"], 16), int(query["phash"], 16)) <= 6
            ),
            None,
        )
        found = earliest(index, query)
        assert (found.duplicate_of if found else None) == expected


def test_negative_signed_hashes_round_trip():
    assert to_signed(2**64 - 1) == -1 and to_signed(5) == 5
    top = row(T0, 2**64 - 1, n=1)
    query = row(T0 + timedelta(seconds=1), 2**64 - 2, n=2)
    assert earliest(index_of(top, query), query).distance == 1


def test_segments_are_written_per_batch_and_upload_date_and_loaded_by_window(tmp_path):
    lake = Lake((tmp_path / "lake").as_uri())
    today = row(T0, 0x1, batch="t-0-0-1", n=1)
    yesterday = row(T0 - timedelta(days=1), 0x3, batch="t-0-0-1", n=2)
    long_ago = row(T0 - timedelta(days=30), 0x7, batch="t-0-2-2", n=3)
    written = write_segment(lake, "t-0-0-1", [today, yesterday])
    write_segment(lake, "t-0-2-2", [long_ago])
    assert sorted(f.key for f in written) == [
        "curated/hash_index/dt=2026-11-23/t-0-0-1.parquet",
        "curated/hash_index/dt=2026-11-24/t-0-0-1.parquet",
    ]
    assert len(segment_keys(lake, "2026-11-17")) == 2
    index = HashIndex.load(lake, "2026-11-17")
    assert len(index) == 2 and index.owner(long_ago["image_id"]) is None
    write_segment(lake, "t-1-0-0", [row(T0, 0xF, batch="t-1-0-0", n=4)])
    refreshed, new = index.refreshed(lake, "2026-11-17")
    assert new == {"curated/hash_index/dt=2026-11-24/t-1-0-0.parquet"} and len(refreshed) == 3
    assert index.refreshed(lake, "2026-11-17")[0] is not index
    assert refreshed.refreshed(lake, "2026-11-17") == (refreshed, set())


@pytest.mark.parametrize("n", [0, 1])
def test_an_empty_or_tiny_index_answers_nothing(n):
    rows = [row(T0, 0x5, n=1)][:n]
    query = row(T0 + timedelta(seconds=1), 0x5, n=2)
    index = index_of(*rows) if rows else HashIndex()
    assert (earliest(index, query) is None) == (n == 0)


def crowded_day(lake: Lake, batches: int) -> list[dict]:
    rows = []
    for b in range(batches):
        batch = [row(T0 + timedelta(seconds=b), 0x1000 + b, batch=f"t-0-{b}-{b}", n=b)]
        write_segment(lake, f"t-0-{b}-{b}", batch)
        rows += batch
    return rows


def test_a_crowded_day_is_merged_into_one_file_and_nothing_is_lost(tmp_path):
    lake = Lake((tmp_path / "lake").as_uri())
    rows = crowded_day(lake, MERGE_FAN_IN + 8)
    merged = merge_day(lake, "2026-11-24")
    assert merged is not None and merged.rsplit("/", 1)[1].startswith("merged-")
    assert segment_keys(lake, "2026-11-24") == {merged}
    index = HashIndex.load(lake, "2026-11-24")
    assert sorted(index.ids.astype(str)) == sorted(r["image_id"] for r in rows)
    assert merge_day(lake, "2026-11-24") is None  # one file: nothing to merge
    write_segment(lake, "t-0-0-0", [rows[0]])  # a re-run writes its segment again
    assert len(HashIndex.load(lake, "2026-11-24")) == len(rows)  # the copy is read once


class MergeMidRead(Lake):
    """A real local lake whose reader is overtaken by a merge between listing and reading."""

    def __init__(self, url: str, trigger: str) -> None:
        super().__init__(url)
        self.trigger, self.fired = trigger, False

    def get(self, key):
        if key == self.trigger and not self.fired:
            self.fired = True
            merge_day(Lake(self.url), "2026-11-24")  # merges and deletes what the reader listed
        return super().get(key)


def test_a_reader_overtaken_by_a_merge_lists_again_and_misses_nothing(tmp_path):
    plain = Lake((tmp_path / "lake").as_uri())
    rows = crowded_day(plain, MERGE_FAN_IN + 4)
    racing = MergeMidRead(plain.url, trigger=sorted(segment_keys(plain, "2026-11-24"))[0])
    index = HashIndex.load(racing, "2026-11-24")
    assert racing.fired and len(index) == len(rows)


class HoldDeletes(Lake):
    """A real local lake whose deletes wait until the test opens the gate."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.reached, self.gate = threading.Event(), threading.Event()

    def delete(self, key):
        self.reached.set()
        assert self.gate.wait(30), "gate never opened"
        super().delete(key)


def test_two_runs_merging_at_once_keep_every_entry_once(tmp_path):
    lake = Lake((tmp_path / "lake").as_uri())
    rows = crowded_day(lake, MERGE_FAN_IN + 2)
    slow = HoldDeletes(lake.url)
    first = threading.Thread(target=merge_day, args=(slow, "2026-11-24", 0))
    first.start()
    assert slow.reached.wait(30)  # merged file written, nothing deleted yet
    late = row(T0 + timedelta(hours=1), 0xBEEF, batch="t-1-0-0", n=999)
    write_segment(lake, "t-1-0-0", [late])
    assert merge_day(lake, "2026-11-24", fan_in=0) is not None  # a second run merges meanwhile
    during = HashIndex.load(lake, "2026-11-24")
    slow.gate.set()
    first.join(30)
    after = HashIndex.load(lake, "2026-11-24")
    for index in (during, after):
        assert len(index) == len(rows) + 1 and index.owner(late["image_id"]) == "t-1-0-0"


def test_the_storage_inventory_counts_the_index_under_its_folder():
    from imagelake.batch.garbage_collection import inventory_prefix

    assert inventory_prefix(layout.hash_index_key("2026-11-24", "t-0-0-1")) == (
        "curated",
        "curated/hash_index",
    )


def _described(data: bytes, at: datetime, n: int) -> dict:
    """An image_metadata row of real image bytes, as the batch run builds it."""
    facts = describe(data, max_pixels=10**8, uploaded_at=at)
    return {
        **row(at, facts.phash, n=n, sha=hashlib.sha256(data).hexdigest()),
        "contrast": facts.contrast,
    }


def test_flat_images_of_different_colours_are_not_near_duplicates_but_exact_copies_are():
    """A one-colour image's pHash is rounding noise (its distances depend on the imaging library's
    rounding), so flat images of different colours must never match; exact copies still do."""
    white, grey, red = (
        images.encode(Image.new("RGB", (200, 150), colour), fmt)
        for colour, fmt in (((255, 255, 255), "PNG"), ((128, 128, 128), "JPEG"), ((255, 0, 0), "PNG"))
    )
    blank = images.encode(Image.new("RGBA", (200, 150), (0, 0, 0, 0)), "PNG")  # white once composited
    rows = [
        _described(data, T0 + timedelta(minutes=n), n)
        for n, data in enumerate([white, grey, red, blank, white])
    ]
    assert all(r["contrast"] < FLAT_CONTRAST for r in rows)
    index = index_of(*rows)
    found = [
        index.earliest_match(r["image_id"], r["uploaded_at"], match_hash(r), r["sha256"], 6, WEEK)
        for r in rows
    ]
    assert found[:4] == [None, None, None, None]
    assert found[4] == Match(rows[0]["image_id"], "exact", 0)


def test_images_with_any_structure_keep_matching_by_their_perceptual_hash():
    photo = images.photo(320, 240, seed=3)
    again = images.encode(Image.open(io.BytesIO(photo)).resize((160, 120)), "PNG")
    faint = np.tile(np.linspace(100, 104, 200), (150, 1)).astype(np.uint8)  # a 4-level gradient
    rows = [
        _described(data, T0 + timedelta(minutes=n), n)
        for n, data in enumerate([photo, again, images.encode(Image.fromarray(faint), "PNG")])
    ]
    assert [match_hash(r) for r in rows] == [int(r["phash"], 16) for r in rows]
    assert rows[2]["contrast"] >= FLAT_CONTRAST
    match = index_of(*rows).earliest_match(
        rows[1]["image_id"], rows[1]["uploaded_at"], match_hash(rows[1]), rows[1]["sha256"], 6, WEEK
    )
    assert match is not None and (match.duplicate_of, match.kind) == (rows[0]["image_id"], "near")


def test_a_corrupt_index_file_is_named_with_what_to_do(tmp_path):
    """One such file stops every batch of the week; the operator must learn which one it is."""
    lake = Lake((tmp_path / "lake").as_uri())
    write_segment(lake, "t-0-0-1", [row(T0, 0x1, batch="t-0-0-1", n=1)])
    broken = "curated/hash_index/dt=2026-11-24/t-0-2-2.parquet"
    lake.put(broken, b"PAR1 not really parquet")
    with pytest.raises(CorruptLakeFile) as info:
        HashIndex.load(lake, "2026-11-17")
    assert info.value.key == broken
    assert broken in str(info.value) and "re-execute the failed run" in str(info.value)


def test_a_client_is_told_only_of_its_own_earliest_copy_near_ones_and_the_window_included():
    from imagelake.realtime.duplicate_resolution import own_client_verdicts, resolve_rows

    h = 0x0F0F_F0F0_1234_5678
    theirs = {**row(T0, h, n=1), "client_id": "a"}
    mine_near = {**row(T0 + timedelta(hours=1), h ^ 0b111, n=2), "client_id": "b"}  # 3 bits off
    mine_again = {**row(T0 + timedelta(hours=2), h, n=3), "client_id": "b"}
    mine_late = {**row(T0 + WEEK + timedelta(minutes=30), h, n=4), "client_id": "b"}  # theirs out of its week
    rows = [theirs, mine_near, mine_again, mine_late]
    index = index_of(*rows)
    resolved = resolve_rows(index, rows, threshold=6, window=WEEK)
    assert [r["duplicate_of"] for r in resolved] == [
        None,
        theirs["image_id"],
        theirs["image_id"],
        mine_near["image_id"],
    ]

    told = own_client_verdicts(index, resolved, threshold=6, window=WEEK)
    assert [(r["duplicate_of"], r["duplicate_kind"], r["duplicate_distance"]) for r in told] == [
        (None, None, None),
        (None, None, None),  # only another client had it before: nothing to tell
        (mine_near["image_id"], "near", 3),
        (mine_near["image_id"], "near", 3),  # already its own: unchanged
    ]
    assert index.client_of(theirs["image_id"]) == "a" and index.client_of(image_id(T0, 99)) is None
