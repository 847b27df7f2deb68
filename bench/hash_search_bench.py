"""``make bench-hash-search``: multi-index hashing against the linear scan of the duplicate index.

The real-time path finds an upload's near duplicates by scanning every 64-bit
perceptual hash of the 7-day window (``imagelake.realtime.hash_index``: XOR,
popcount and compare over the window's slice). That is linear in the window:
about a millisecond at a million entries, but 100 M uploads a day keep 700 M.
Multi-index hashing (Norouzi, Punjani and Fleet, 2012) splits each hash into m
bands; two hashes within distance r differ in at most floor(r / m) bits in at
least one band (pigeonhole), so a query looks up, in each band's sorted table,
every value within floor(r / m) bits of its own band, and checks the full
distance of the candidates found only.

This prototype measures both on the same random hashes, with planted near
duplicates (half the queries have one, 1 to r bits away), at each size: build
time, query time p50/p95, candidates checked per query, and memory per entry.
It checks that both find the same earliest match for every query. Last line:
``RESULT hash_search entries=<largest> linear_ms=<p50> mih_ms=<p50> speedup=<x>``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from functools import partial
from itertools import combinations

import numpy as np

from bench.percentiles import percentile
from imagelake.realtime.hash_index import distances
from imagelake.settings import DUPLICATE_MAX_DISTANCE


def masks(bits: int, flips: int) -> np.ndarray:
    """Every ``bits``-bit mask with at most ``flips`` bits set."""
    out = [0]
    for k in range(1, flips + 1):
        out += [sum(1 << i for i in combo) for combo in combinations(range(bits), k)]
    return np.array(out, dtype=np.uint64)


@dataclass
class MultiIndex:
    """m band tables over the stored hashes: each band's values sorted, with their positions."""

    hashes: np.ndarray
    bands: int
    radius: int

    def __post_init__(self) -> None:
        self.width = 64 // self.bands
        self.flips = self.radius // self.bands
        self.probes = masks(self.width, self.flips)
        mask = np.uint64((1 << self.width) - 1)
        self.keys, self.order = [], []
        for band in range(self.bands):
            values = (self.hashes >> np.uint64(band * self.width)) & mask
            order = np.argsort(values, kind="stable").astype(np.uint32)
            self.keys.append(values[order].astype(np.uint32 if self.width <= 32 else np.uint64))
            self.order.append(order)

    def earliest(self, query: int) -> tuple[int | None, int]:
        """The first stored position within ``radius`` of ``query``, and the candidates checked."""
        candidates = []
        for band in range(self.bands):
            own = (query >> (band * self.width)) & ((1 << self.width) - 1)
            probes = (np.uint64(own) ^ self.probes).astype(self.keys[band].dtype)
            lo = np.searchsorted(self.keys[band], probes, "left")
            hi = np.searchsorted(self.keys[band], probes, "right")
            for a, b in zip(lo[hi > lo], hi[hi > lo], strict=True):
                candidates.append(self.order[band][a:b])
        if not candidates:
            return None, 0
        found = np.unique(np.concatenate(candidates))
        hit = found[distances(self.hashes[found], query) <= self.radius]
        return (int(hit[0]) if len(hit) else None), len(found)

    @property
    def bytes_per_entry(self) -> float:
        table = sum(k.itemsize + o.itemsize for k, o in zip(self.keys, self.order, strict=True))
        return self.hashes.itemsize + table


def linear_earliest(hashes: np.ndarray, query: int, *, radius: int) -> int | None:
    hit = distances(hashes, query) <= radius
    first = int(hit.argmax())
    return first if hit[first] else None


def queries(hashes: np.ndarray, count: int, radius: int, rng: np.random.Generator) -> list[int]:
    """Half near copies of stored hashes (1 to ``radius`` bits flipped), half random."""
    out = []
    for i in range(count):
        if i % 2:
            out.append(int(rng.integers(0, 2**64, dtype=np.uint64)))
            continue
        base = int(hashes[int(rng.integers(len(hashes)))])
        for bit in rng.choice(64, size=int(rng.integers(1, radius + 1)), replace=False):
            base ^= 1 << int(bit)
        out.append(base)
    return out


def timed(fn, items: list[int]) -> tuple[list, list[float]]:
    results, ms = [], []
    for item in items:
        started = time.perf_counter()
        results.append(fn(item))
        ms.append((time.perf_counter() - started) * 1000)
    return results, ms


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", default="1000000,10000000,100000000", help="stored hashes, comma-separated"
    )
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--bands", default="2,4", help="m values to try, comma-separated (64 / m bits each)")
    parser.add_argument("--radius", type=int, default=DUPLICATE_MAX_DISTANCE)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(18)
    print(f"near-duplicate search, radius {args.radius} bits of 64, {args.queries} queries per size")
    best: tuple[int, float, float] | None = None  # (entries, linear p50, fastest multi-index p50)
    for size in [int(s) for s in args.sizes.split(",")]:
        hashes = rng.integers(0, 2**64, size=size, dtype=np.uint64)
        asked = queries(hashes, args.queries, args.radius, rng)
        truth, linear_ms = timed(partial(linear_earliest, hashes, radius=args.radius), asked)
        found = sum(t is not None for t in truth)
        print(
            f"\n{size:,} hashes ({found} of {len(asked)} queries have a match): linear scan "
            f"p50 {percentile(linear_ms, 50):.2f} ms, p95 {percentile(linear_ms, 95):.2f} ms, 8 bytes per entry"
        )
        for bands in [int(b) for b in args.bands.split(",")]:
            started = time.process_time()
            index = MultiIndex(hashes, bands, args.radius)
            build_s = time.process_time() - started
            answers, mih_ms = timed(index.earliest, asked)
            assert [a for a, _ in answers] == truth, "multi-index hashing missed or invented a match"
            checked = statistics.mean(n for _, n in answers)
            print(
                f"  m={bands} ({index.width}-bit bands, {len(index.probes)} probes per band): p50 "
                f"{percentile(mih_ms, 50):.2f} ms, p95 {percentile(mih_ms, 95):.2f} ms, {checked:,.0f} candidates checked per "
                f"query, {index.bytes_per_entry:.0f} bytes per entry, built in {build_s:.1f} CPU-s; same "
                f"answers as the scan"
            )
            if best is None or size > best[0] or percentile(mih_ms, 50) < best[2]:
                best = (size, percentile(linear_ms, 50), percentile(mih_ms, 50))
    assert best is not None
    size, linear, mih = best
    print(
        f"RESULT hash_search entries={size} linear_ms={linear:.2f} mih_ms={mih:.2f} speedup={linear / mih:.0f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
