"""make bench-stats: p95 latency of the statistics endpoints under 50 concurrent clients while the
warehouse refreshes.

Sets up a lake of generated days (tests/support/lake_data.py), builds the warehouse and publishes
the statistics snapshot, then starts the API as it is deployed (``python -m imagelake.api``: JSON
logs, metrics, the snapshot poller) and, beside it, a process that rebuilds the warehouse and
publishes a new snapshot over and over, as the refresh sensor would on a busy day (at lowered
CPU priority, as a warehouse run does). Under that, in the same run:

* ours: 50 clients, each on its own keep-alive connection, sending its next request as soon as
  the last is answered (closed loop, no think time): usage of a random client over a random range
  of up to 90 days, and one request in five the operator's service statistics;
* the baseline: the same clients on ``GET /healthz``, the cheapest route of the same server,
  which is the floor the HTTP stack, the middleware and the event loop set on this machine;
* then, the refresh loop stopped, the statistics again: what the build beside the API costs them
  (in production the builds run in their own pods or in Redshift, not beside an API replica).

An answer that is not a 200 is an error. The last line is ``RESULT stats p95_ms=<x> errors=<n>``;
the target is p95 <= 50 ms and no error.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.args import positive_int, seconds
from bench.http_load import LoadResult, get_request, run_load
from imagelake.settings import PROJECT_ROOT, RETENTION_DAYS
from infra.local.stack import free_port, port_in_use

TARGET_P95_MS = 50.0
OPERATOR_KEY = "bench-operator"


def api_keys(clients: int) -> str:
    """The generated data's clients (client-000 ...), each with a key."""
    return ",".join(f"key-{i:03d}:client-{i:03d}" for i in range(clients))


def environment(data_dir: Path, port: int, clients: int) -> dict[str, str]:
    return {
        **os.environ,
        "IMAGELAKE_ENV": "local",
        "IMAGELAKE_DATA_DIR": str(data_dir),
        "IMAGELAKE_API_PORT": str(port),
        "IMAGELAKE_API_KEYS": api_keys(clients),
        "IMAGELAKE_OPERATOR_KEYS": f"{OPERATOR_KEY}:bench",
        # No Kafka in this benchmark: the statistics never touch it (the producer waits idle).
        "IMAGELAKE_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
    }


def prepare(data_dir: Path, days: int, images: int, clients: int) -> str:
    """The lake of generated days, the warehouse built over them and its first snapshot (in a child
    process: dbt-duckdb keeps the warehouse open for the life of the process that built it)."""
    env = environment(data_dir, free_port(), clients)
    script = (
        "import sys\n"
        "from datetime import UTC, datetime\n"
        "import dagster as dg\n"
        "from imagelake.lake.store import Lake\n"
        "from imagelake.settings import get_settings\n"
        "from imagelake.warehouse.days import DayWindow\n"
        "from tests.support import lake_data\n"
        "from tests.support.warehouse_builds import build\n"
        "settings = get_settings()\n"
        "lake = Lake.from_settings(settings)\n"
        f"days = lake_data.days_back(datetime.now(UTC).date(), {days})\n"
        "for day in days:\n"
        f"    lake_data.write_day(lake, lake_data.generate_day(day, lake_data.DayShape(images={images}, "
        f"seed=19, clients={clients})))\n"
        "with dg.instance_for_test() as instance:\n"
        "    assert build(settings, instance, DayWindow(days[0], days[-1]), snapshot=True).success\n"
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"preparing the warehouse failed:\n{done.stderr[-3000:]}")
    return f"{days} days x {images:,} images, {clients} clients: built and published in {time.monotonic() - started:.0f}s"


REFRESH_LOOP = """
import os, time
from datetime import UTC, datetime
import dagster as dg
from imagelake.settings import get_settings
from imagelake.warehouse.days import DayWindow
from tests.support.warehouse_builds import build
os.nice(10)  # a warehouse run yields the CPU, as orchestration/run_worker.py does
settings = get_settings()
today = datetime.now(UTC).date()
with dg.instance_for_test() as instance:
    while True:
        started = time.monotonic()
        ok = build(settings, instance, DayWindow(today, today), snapshot=True, raise_on_error=False).success
        print(f"refresh {'ok' if ok else 'FAILED'} in {time.monotonic() - started:.1f}s", flush=True)
"""


def listing_cost(data_dir: Path, retention_days: int) -> list[str]:
    """What today's storage figures cost a refresh (imagelake/warehouse/storage_listing.py): the
    listing of today's objects, beside a listing of the whole lake, on the benchmark's lake (a copy
    of its listings is set aside, so the lake is left as it was)."""
    from imagelake.batch.garbage_collection import GC_PREFIXES
    from imagelake.lake.store import Lake
    from imagelake.warehouse.storage_listing import list_storage

    lake = Lake((data_dir / "lake").as_uri())
    now = datetime.now(UTC)
    started = time.perf_counter()
    whole = sum(1 for prefix in GC_PREFIXES for _ in lake.list(prefix))
    whole_s = time.perf_counter() - started
    list_storage(lake, [now.date()], now, retention_days)  # once for the imports a run pays at its start
    _, today = list_storage(lake, [now.date()], now, retention_days)
    return [
        f"storage listing of today: {today.objects_listed:,} objects in {today.seconds * 1000:.0f} ms "
        f"(whole lake: {whole:,} objects in {whole_s * 1000:.0f} ms, {whole / max(1, today.objects_listed):.1f}x "
        "the objects); on S3 a LIST request returns 1,000 keys"
    ]


def stop(process: subprocess.Popen) -> None:
    """End a child and everything it started: SIGTERM to its group, SIGKILL if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(15)
            return
        except subprocess.TimeoutExpired:
            continue


def wait_for_line(path: Path, text: str, process: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in path.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{text!r} never appeared in {path} (exit code {process.poll()})")
        time.sleep(0.5)


def wait_until_serving(api: subprocess.Popen, port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not port_in_use(port):
        if api.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the API did not start on port {port} (exit code {api.poll()})")
        time.sleep(0.2)


def requests_for(clients: int, count: int, seed: int) -> list[bytes]:
    """A fixed mix: usage of random clients over random ranges, one in five the service."""
    rng = random.Random(seed)
    today = datetime.now(UTC).date()
    out = []
    for _ in range(count):
        last = today - timedelta(days=rng.randrange(0, 3))
        first = last - timedelta(days=rng.randrange(0, 90))
        query = f"from={first}&to={last}"
        if rng.random() < 0.2:
            out.append(get_request("bench", f"/v1/stats/service?{query}", {"X-API-Key": OPERATOR_KEY}))
        else:
            key = f"key-{rng.randrange(clients):03d}"
            out.append(get_request("bench", f"/v1/stats/usage?{query}", {"X-API-Key": key}))
    return out


def measure(port: int, requests: list[bytes], clients: int, duration_s: float, warmup_s: float) -> LoadResult:
    asyncio.run(run_load("127.0.0.1", port, requests, clients, warmup_s))
    return asyncio.run(run_load("127.0.0.1", port, requests, clients, duration_s))


def report(name: str, result: LoadResult) -> str:
    return (
        f"{name:<28} p50 {result.percentile_ms(50):7.1f} ms   p95 {result.percentile_ms(95):7.1f} ms   "
        f"p99 {result.percentile_ms(99):7.1f} ms   {result.rate:7.0f} req/s   errors {result.errors}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=positive_int, default=50, help="concurrent HTTP clients")
    parser.add_argument("--duration", type=seconds, default=30.0, help="seconds measured per phase")
    parser.add_argument("--warmup", type=seconds, default=3.0, help="seconds of load before measuring")
    parser.add_argument("--days", type=positive_int, default=7)
    parser.add_argument("--images", type=positive_int, default=20_000, help="images a day")
    parser.add_argument("--api-clients", type=positive_int, default=200, help="clients in the data")
    parser.add_argument("--data", type=Path, default=PROJECT_ROOT / ".cache" / "bench-stats")
    args = parser.parse_args()

    load = os.getloadavg()[0]
    print(f"load average at start: {load:.2f} ({os.cpu_count()} cores)")
    subprocess.run(["rm", "-rf", str(args.data)], check=True)
    print(prepare(args.data, args.days, args.images, args.api_clients))
    print(*listing_cost(args.data, RETENTION_DAYS), sep="\n")

    port = free_port()
    env = environment(args.data, port, args.api_clients)
    logs = args.data / "api.log"
    with logs.open("w") as api_log, (args.data / "refresh.log").open("w") as refresh_log:
        # Each in a process group of its own, stopped whole: the refresh loop has dbt children.
        api = subprocess.Popen(
            [sys.executable, "-m", "imagelake.api"],
            env=env,
            cwd=PROJECT_ROOT,
            stderr=api_log,
            start_new_session=True,
        )
        refresher = subprocess.Popen(
            [sys.executable, "-c", REFRESH_LOOP],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=refresh_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_until_serving(api, port, 120)
            # Measure while a build runs: from the moment the first refresh has started dbt.
            wait_for_line(args.data / "refresh.log", "Running dbt command", refresher, 300)
            requests = requests_for(args.api_clients, 5000, seed=7)
            ours = measure(port, requests, args.clients, args.duration, args.warmup)
            floor = measure(
                port, [get_request("bench", "/healthz")], args.clients, args.duration, args.warmup
            )
            stop(refresher)  # what the refresh costs the statistics: the same load with no build beside it
            quiet = measure(port, requests, args.clients, args.duration, args.warmup)
        finally:
            stop(refresher)
            stop(api)
    refreshes = (args.data / "refresh.log").read_text().count("refresh ok")
    swaps = logs.read_text().count("serving statistics snapshot")
    print(f"while measuring: {refreshes} warehouse refresh(es) completed; the API loaded {swaps} snapshot(s)")
    print(report("statistics (ours)", ours))
    print(report("GET /healthz (baseline)", floor))
    print(report("statistics, refresh stopped", quiet))
    ratio = ours.percentile_ms(95) / floor.percentile_ms(95)
    print(f"p95 ratio statistics / healthz floor: {ratio:.2f}")
    for sample in ours.error_samples:
        print(f"error: {sample}")
    met = ours.percentile_ms(95) <= TARGET_P95_MS and ours.errors == 0
    print(f"target p95 <= {TARGET_P95_MS:.0f} ms and 0 errors: {'met' if met else 'NOT met'}")
    print(f"RESULT stats p95_ms={ours.percentile_ms(95):.1f} errors={ours.errors}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
