"""``make bench-load``: sustained uploads on the production-mode stack, stepping the offered rate up.

The stack is ``infra/local/prod_stack.py`` (IMAGELAKE_ENV=prod: moto's S3,
DynamoDB Local, Kafka, Dagster on PostgreSQL, code locations served by
``dagster api grpc``, the API as the container runs it) on free ports. The
batch work is paused for the run (the derivatives, compaction and
garbage-collection schedules, the warehouse refresh sensor and schedule: in
production they run on EMR and Redshift, and their own benchmarks measure
them); the real-time path runs as in production.

Each step offers a fixed rate of uploads for a fixed duration from concurrent
clients (open loop: a send is scheduled every 1/rate s whatever the answers),
then the rate goes up until the API or the pipeline falls behind. Per step:
upload throughput and latency (p50/p95/p99), processing throughput and the
upload-to-processed lag (p95: from the client's send to the ``processed_at`` the
batch run records in the catalog, read after the steps), and
where the CPU went: our processes (API, daemon, webserver, code servers with
their run workers) apart from the stand-ins (Kafka, DynamoDB Local, moto,
PostgreSQL) and the load generator. The per-image work itself (admission check,
sha256, the real-time path's metadata and hashes) is measured in this process
on the same images, so ``overhead`` = our CPU per image / that work.

Images: 1024x768 JPEGs of about 70 KB (a typical web upload), then a short step
of 12 MP photos. Last line: ``RESULT load upload_rps=... upload_p95_ms=...
e2e_img_s=... lag_p95_s=... cpu_ms_per_img=... work_ms_per_img=...
overhead=... lost=...`` for the highest step that held. Targets: e2e_img_s >=
0.9 x upload_rps with the lag not growing within the step, overhead <= 5,
lost = 0.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import psutil
from PIL import Image

from bench.args import positive_int, seconds
from bench.percentiles import percentile
from bench.realtime_bench import encode, photo, scene
from imagelake.catalog import Catalog
from imagelake.images.checks import check_upload
from imagelake.lake import layout
from imagelake.lake.ids import new_image_id
from imagelake.realtime.batches import metadata_row
from imagelake.realtime.events import UploadEvent
from imagelake.settings import ALLOWED_FORMATS, MAX_IMAGE_PIXELS
from infra.k8s.instance import load_values
from infra.local.prod_instance import code_servers
from infra.local.prod_stack import BACKING, BATCH_WORK, ProdPorts, ProdStack

API_KEY = "dev-key"


#: Settings for a stack whose runs share one machine's cores (--env overrides them). One real-time run at
#: a time: its fixed cost (a process, Dagster's import, ~100 database connections) is then shared by a
#: larger batch; with one run per partition at once (0), the machine was saturated from 5 uploads/s
#: (docs/benchmarks.md, bench-load). A batch is one partition's offsets, so with one run at a time each
#: partition waits its turn and the lag is about partitions x tick: one partition ticked three times
#: as slowly keeps that lag with a third of the runs. One run a tick then carries at most a batch, so
#: the batch cap is the pipeline's ceiling: twice the default lets it go as far as the machine does.
#: In Kubernetes each run has a pod of its own, and the partitions are what lets runs go side by side.
ONE_MACHINE = {
    "IMAGELAKE_SENSOR_MAX_RUNS_IN_FLIGHT": "1",
    "IMAGELAKE_UPLOADS_TOPIC_PARTITIONS": "1",
    "IMAGELAKE_SENSOR_INTERVAL_S": "15",
    "IMAGELAKE_SENSOR_BATCH_SIZE": "1000",
}
#: Our processes py-spy samples with --profile.
PROFILED = ("api", "daemon", "code-imagelake")


# -- images -------------------------------------------------------------------------------------
def web_photo(seed: int, width: int = 1024, height: int = 768) -> bytes:
    """A photo-like JPEG of about 70 KB at 1024x768: blurred shapes, light sensor noise, quality 80."""
    rng = np.random.default_rng(seed)
    base = scene(width // 4, height // 4, seed).resize((width, height), Image.Resampling.BICUBIC)
    noise = np.repeat(np.repeat(rng.normal(0, 2.0, (height // 2, width // 2, 1)), 2, 0), 2, 1)
    pixels = np.clip(np.asarray(base, np.float32) + noise.astype(np.float32), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, "JPEG", quality=80)
    return out.getvalue()


def big_photo(seed: int) -> bytes:
    return encode(photo(4000, 3000, 7000 + seed), "JPEG", quality=85)


def work_ms(images: list[bytes], rounds: int = 3) -> float:
    """CPU ms per image of the work itself, on one core: what the API checks (admission, sha256) and what
    the real-time run computes (sha256, metadata, EXIF, perceptual hash, statistics). Best of ``rounds``."""
    per_image = []
    for data in images:
        now = datetime.now(UTC)
        image_id = new_image_id(int(now.timestamp() * 1000))
        event = UploadEvent(
            image_id=image_id,
            client_id="bench",
            key=layout.raw_image_key(layout.dt_of(now), image_id),
            sha256=hashlib.sha256(data).hexdigest(),
            size_bytes=len(data),
            format="JPEG",
            uploaded_at=now,
        )
        best = float("inf")
        for _ in range(rounds):
            started = time.process_time()
            check_upload(data, max_pixels=MAX_IMAGE_PIXELS, allowed=ALLOWED_FORMATS)
            hashlib.sha256(data).hexdigest()
            row = metadata_row(event, data, datetime.now(UTC), "bench-0-0-0", MAX_IMAGE_PIXELS)
            best = min(best, time.process_time() - started)
        assert row["status"] == "processed", row["error"]
        per_image.append(best)
    return statistics.mean(per_image) * 1000


# -- CPU ----------------------------------------------------------------------------------------
def tree_cpu(pid: int) -> float:
    """CPU seconds of a process, every descendant alive, and every descendant already reaped."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


class CpuMeter:
    """CPU seconds so far of each service of the stack, of this process and of the whole machine."""

    def __init__(self, stack: ProdStack) -> None:
        self.stack = stack

    def sample(self) -> dict[str, float]:
        out = {name: tree_cpu(s.process.pid) for name, s in self.stack.services.items()}
        me = psutil.Process().cpu_times()
        out["load generator"] = me.user + me.system
        machine = psutil.cpu_times()
        out["machine"] = machine.user + machine.nice + machine.system + machine.irq + machine.softirq
        return out


def ours(cpu: dict[str, float]) -> float:
    """Our processes on the real-time path: everything but the stand-ins, the warehouse's code server
    (paused), this process and the machine total."""
    return sum(
        v for k, v in cpu.items() if k not in (*BACKING, "code-warehouse", "load generator", "machine")
    )


# -- load ---------------------------------------------------------------------------------------
@dataclass
class Upload:
    image_id: str | None
    status: int
    scheduled: float
    sent: float
    answered: float


@dataclass
class Step:
    rate: float
    duration: float
    started: float = 0.0
    ended: float = 0.0
    uploads: list[Upload] = field(default_factory=list)
    cpu_before: dict[str, float] = field(default_factory=dict)
    cpu_after: dict[str, float] = field(default_factory=dict)
    label: str = "1024x768"

    @property
    def accepted(self) -> list[Upload]:
        return [u for u in self.uploads if u.status == 202]


async def offer(
    api: str, bodies: list[bytes], rate: float, duration: float, clients: int, step: Step
) -> None:
    """Send one upload every 1/rate s for ``duration`` s through ``clients`` concurrent connections."""
    queue: asyncio.Queue[float | None] = asyncio.Queue()
    count = int(rate * duration)
    start = time.time() + 0.2
    step.started = start

    async def schedule() -> None:
        for i in range(count):
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - time.time()))
            queue.put_nowait(due)
        for _ in range(clients):
            queue.put_nowait(None)

    async def client(n: int) -> None:
        async with httpx.AsyncClient(base_url=api, headers={"X-API-Key": API_KEY}, timeout=60) as http:
            i = n
            while (due := await queue.get()) is not None:
                body = bodies[i % len(bodies)]
                i += clients
                sent = time.time()
                try:
                    response = await http.post(
                        "/v1/images", files={"file": ("photo.jpg", body, "image/jpeg")}
                    )
                    status = response.status_code
                    image_id = response.json().get("image_id") if status == 202 else None
                except httpx.HTTPError:
                    status, image_id = 0, None
                step.uploads.append(Upload(image_id, status, due, sent, time.time()))

    await asyncio.gather(schedule(), *(client(n) for n in range(clients)))
    step.ended = time.time()


@dataclass
class Figures:
    offered: float
    upload_rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    refused: int
    e2e_img_s: float
    lag_p50_s: float
    lag_p95_s: float
    lag_p95_first_s: float
    lag_p95_second_s: float
    cpu: dict[str, float]
    accepted: int
    runs: int
    mean_batch: float
    launch_s: float
    run_s: float

    @property
    def cpu_ms_per_img(self) -> float:
        return ours(self.cpu) / max(1, self.accepted) * 1000

    @property
    def lag_growing(self) -> bool:
        first, second = self.lag_p95_first_s, self.lag_p95_second_s
        return second > max(first * 1.25, first + 3.0)

    @property
    def api_keeps_up(self) -> bool:
        return self.refused == 0 and self.upload_rps >= 0.95 * self.offered

    @property
    def pipeline_keeps_up(self) -> bool:
        return self.e2e_img_s >= 0.9 * self.upload_rps and not self.lag_growing

    @property
    def held(self) -> bool:
        return self.api_keeps_up and self.pipeline_keeps_up


def figures(step: Step, processed_at: dict[str, float], runs: list[BatchRun]) -> Figures:
    """A step's figures; throughputs and the lag's growth over its steady part (after the first third),
    the lag's percentiles over all of it. The processing throughput is over whole run cycles when
    ``runs`` has them (:func:`pipeline_rate`).

    The lag of an upload is from the client's send to the ``processed_at`` its batch run recorded in
    the catalog (read once, after the drain: polling DynamoDB Local for every upload while the step
    runs cost the machine more than the catalog writes themselves). The run writes the item about a
    second after that time, at the end of its step."""
    # (sent, lag) of every upload processed
    lags = [(u.sent, processed_at[u.image_id] - u.sent) for u in step.accepted if u.image_id in processed_at]
    steady = step.started + step.duration / 3
    window = step.ended - steady
    accepted = step.accepted
    latencies = [(u.answered - u.sent) * 1000 for u in accepted]
    in_window = [u for u in accepted if steady <= u.sent <= step.ended]
    done = [t for t in processed_at.values() if steady <= t <= step.ended]
    # Lag growth within the step: the steady part's two halves (the first third is the step from the
    # previous rate to this one, where the lag moves to its new level).
    middle = steady + (step.ended - steady) / 2
    first = [lag for sent, lag in lags if steady <= sent < middle]
    second = [lag for sent, lag in lags if sent >= middle]
    every = [lag for _, lag in lags]
    cpu = {k: step.cpu_after[k] - step.cpu_before.get(k, 0.0) for k in step.cpu_after}
    in_step = [r for r in runs if step.started <= r.created <= step.ended]
    return Figures(
        offered=step.rate,
        upload_rps=len(in_window) / window,
        p50_ms=percentile(latencies, 50),
        p95_ms=percentile(latencies, 95),
        p99_ms=percentile(latencies, 99),
        refused=len(step.uploads) - len(accepted),
        e2e_img_s=rate
        if (rate := pipeline_rate(runs, steady, step.ended)) is not None
        else len(done) / window,
        lag_p50_s=percentile(every, 50),
        lag_p95_s=percentile(every, 95),
        lag_p95_first_s=percentile(first, 95),
        lag_p95_second_s=percentile(second, 95),
        cpu=cpu,
        accepted=len(accepted),
        runs=len(in_step),
        mean_batch=statistics.mean(r.events for r in in_step) if in_step else 0.0,
        launch_s=statistics.median(r.launch_s for r in in_step) if in_step else float("nan"),
        run_s=statistics.median(r.run_s for r in in_step) if in_step else float("nan"),
    )


# -- the stack ----------------------------------------------------------------------------------
def pause_batch_work(stack: ProdStack) -> None:
    for location, kind, name in BATCH_WORK:
        stack.set_automation(location, kind, name, running=False)


@dataclass(frozen=True)
class BatchRun:
    created: float
    events: int
    #: Seconds from creation to the run's start (queue and launch: a new process loading the location).
    launch_s: float
    #: Seconds from its start to its end.
    run_s: float

    @property
    def ended(self) -> float:
        return self.created + self.launch_s + self.run_s


def pipeline_rate(runs: list[BatchRun], start: float, end: float) -> float | None:
    """Images per second processed over whole run cycles in [start, end]: the events of the runs that
    ended in it after the first one did, over the time from that first end to the last. None with fewer
    than two ends in the window. Images counted by their processed time in a window would be off by up
    to a whole batch when runs come seconds apart (a 60 s window holds three or four 15 s cycles)."""
    ends = sorted((r.ended, r.events) for r in runs if start <= r.ended <= end)
    if len(ends) < 2 or ends[-1][0] <= ends[0][0]:
        return None
    return sum(events for _, events in ends[1:]) / (ends[-1][0] - ends[0][0])


def instance_of(stack: ProdStack):
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    os.environ["DAGSTER_PG_PASSWORD"] = stack.environment()["DAGSTER_PG_PASSWORD"]
    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(stack.dagster_home)))


def batch_runs(stack: ProdStack) -> list[BatchRun]:
    """Every real-time batch run, from the instance on PostgreSQL."""
    import dagster as dg

    with instance_of(stack) as instance:
        records = instance.get_run_records(dg.RunsFilter(job_name="realtime_batch_job"))
    out = []
    for r in records:
        created = r.create_timestamp.timestamp()
        start, end = r.start_time or created, r.end_time or created
        out.append(
            BatchRun(
                created, int(r.dagster_run.tags.get("imagelake/events", "0")), start - created, end - start
            )
        )
    return out


def empty_runs(stack: ProdStack, count: int) -> tuple[dict[str, float], float]:
    """The fixed cost of a run: ``count`` empty runs (heartbeat_job: launched like a batch run, no work),
    one after the other; CPU seconds per run of each service (and "postgres connections" opened per run,
    the idle ones included), and the median wall time per run. One run goes first, unmeasured: a code
    server's first run starts the forkserver that imports the location once for every later run
    (orchestration/code_server.py), a cost of the stack's start, not of a run."""
    from dagster_graphql import DagsterGraphQLClient

    client = DagsterGraphQLClient("127.0.0.1", port_number=stack.ports.ui, timeout=60)
    heartbeat(client)
    meter = CpuMeter(stack)
    sessions = pg_sessions(stack)
    before = meter.sample()
    walls = [heartbeat(client) for _ in range(count)]
    after = meter.sample()
    per_run = {k: (after[k] - before.get(k, 0.0)) / count for k in after}
    per_run["postgres connections"] = (pg_sessions(stack) - sessions - 1) / count
    return per_run, statistics.median(walls)


def heartbeat(client) -> float:
    """One empty run, from submit to success: its wall time."""
    started = time.monotonic()
    run_id = client.submit_job_execution("heartbeat_job", repository_location_name="imagelake")
    while (status := client.get_run_status(run_id).value) not in ("SUCCESS", "FAILURE", "CANCELED"):
        time.sleep(0.2)
    if status != "SUCCESS":
        raise RuntimeError(f"the empty run {run_id} ended {status}")
    return time.monotonic() - started


def pg_sessions(stack: ProdStack) -> int:
    """Connections PostgreSQL has accepted to Dagster's database so far (this one included)."""
    pg = stack.postgres
    assert pg is not None
    con = pg.connect()
    try:
        with con.cursor() as cur:
            cur.execute("select sessions from pg_stat_database where datname = %s", (pg.database,))
            row = cur.fetchone()
            return int(row[0]) if row else 0
    finally:
        con.close()


def idle_cpu(stack: ProdStack, seconds: float) -> tuple[dict[str, float], float]:
    """CPU seconds per second of each service with no uploads (sensors ticking, the run queue polled),
    and new PostgreSQL connections per second."""
    meter = CpuMeter(stack)
    sessions = pg_sessions(stack)
    before = meter.sample()
    time.sleep(seconds)
    after = meter.sample()
    opened = pg_sessions(stack) - sessions - 1
    return {k: (after[k] - before.get(k, 0.0)) / seconds for k in after}, opened / seconds


def processed_times(catalog: Catalog, ids: list[str]) -> tuple[dict[str, float], dict[str, str]]:
    """When each upload was processed (the run's processed_at), and the status of every one."""
    items = catalog.get_many(ids, consistent=True)
    statuses = {i: items.get(i, {}).get("status", "missing") for i in ids}
    done = {}
    for image_id, item in items.items():
        if item.get("status") == "processed" and item.get("processed_at"):
            at = item["processed_at"]
            done[image_id] = (at if isinstance(at, datetime) else datetime.fromisoformat(str(at))).timestamp()
    return done, statuses


def drain(catalog: Catalog, ids: list[str], patience_s: float) -> dict[str, str]:
    """Wait until every accepted upload is processed, or no progress for ``patience_s``."""
    last, since = -1, time.monotonic()
    while True:
        _, statuses = processed_times(catalog, ids)
        finished = sum(s in ("processed", "failed") for s in statuses.values())
        if finished == len(ids):
            return statuses
        if finished > last:
            last, since = finished, time.monotonic()
        elif time.monotonic() - since > patience_s:
            return statuses
        time.sleep(2)


# -- report -------------------------------------------------------------------------------------
def component_table(cpu: dict[str, float], accepted: int) -> str:
    groups = {
        "ours": [k for k in cpu if k not in (*BACKING, "code-warehouse", "load generator", "machine")],
        "stand-ins": [k for k in BACKING if k in cpu],
        "apart": ["code-warehouse", "load generator"],
    }
    lines = []
    for group, names in groups.items():
        parts = ", ".join(f"{n} {cpu.get(n, 0.0) / max(1, accepted) * 1000:.1f}" for n in names)
        total = sum(cpu.get(n, 0.0) for n in names) / max(1, accepted) * 1000
        lines.append(f"      {group:9} {total:6.1f} ms/img  ({parts})")
    known = sum(v for k, v in cpu.items() if k != "machine")
    lines.append(
        f"      machine   {cpu['machine']:.0f} CPU-s in the step, of which others' processes {cpu['machine'] - known:.0f}"
    )
    return "\n".join(lines)


def breakdown(cpu: dict[str, float], scale: float, unit: str) -> str:
    """Ours, then the stand-ins, each with its services: ``cpu`` x ``scale`` (in ``unit``)."""
    mine = [k for k in cpu if k not in (*BACKING, "code-warehouse", "load generator", "machine")]
    backing = [k for k in BACKING if k in cpu]
    parts = []
    for label, names in (("ours", mine), ("stand-ins", backing)):
        inner = ", ".join(f"{n} {cpu[n] * scale:.2f}" for n in names)
        parts.append(f"{label} {sum(cpu[n] for n in names) * scale:.2f}{unit} ({inner})")
    return "; ".join(parts)


def print_step(label: str, f: Figures, work: float) -> None:
    verdict = "holds" if f.held else ("API behind" if not f.api_keeps_up else "pipeline behind")
    print(
        f"\n  [{label}] offered {f.offered:.0f}/s: uploads {f.upload_rps:.1f}/s "
        f"(p50 {f.p50_ms:.0f} ms, p95 {f.p95_ms:.0f} ms, p99 {f.p99_ms:.0f} ms, not accepted {f.refused}); "
        f"processed {f.e2e_img_s:.1f}/s; lag p50 {f.lag_p50_s:.1f} s, p95 {f.lag_p95_s:.1f} s "
        f"(steady part's first half {f.lag_p95_first_s:.1f}, second {f.lag_p95_second_s:.1f}); "
        f"{f.runs} batch runs, {f.mean_batch:.0f} events each, median launch {f.launch_s:.1f} s and run "
        f"{f.run_s:.1f} s -> {verdict}"
    )
    print(
        f"    CPU per accepted upload: ours {f.cpu_ms_per_img:.1f} ms vs work {work:.2f} ms (overhead {f.cpu_ms_per_img / work:.1f})"
    )
    print(component_table(f.cpu, f.accepted))


def run_steps(
    stack: ProdStack,
    steps: list[Step],
    bodies: list[bytes],
    clients: int,
    catalog: Catalog,
    profile: Path | None = None,
    grace_s: float = 60.0,
) -> list[Step]:
    """Offer each step's load in turn; stop after the first step the API could not take, or whose uploads
    the pipeline left unprocessed for more than ``grace_s`` (the figures are computed after the drain)."""
    meter = CpuMeter(stack)
    done_steps = []
    for step in steps:
        spies = start_profiles(stack, profile, step) if profile else []
        step.cpu_before = meter.sample()
        asyncio.run(offer(stack.api, bodies, step.rate, step.duration, clients, step))
        step.cpu_after = meter.sample()
        stop_profiles(spies)
        done_steps.append(step)
        processed, _ = processed_times(catalog, [u.image_id for u in step.accepted if u.image_id])
        f = figures(step, processed, [])
        # Uploads sent more than ``grace_s`` before the step ended are processed by now if the pipeline
        # keeps up with a lag under that; the step's own verdict comes after the drain (figures()).
        due = [u for u in step.accepted if u.sent <= step.ended - grace_s]
        done = sum(u.image_id in processed for u in due) / len(due) if due else 1.0
        print(
            f"  {step.label} {step.rate:.0f}/s offered: {f.upload_rps:.1f}/s accepted; of its uploads sent "
            f"over {grace_s:.0f} s before its end, {done:.0%} processed",
            flush=True,
        )
        if not f.api_keeps_up or done < 0.9:
            break
    return done_steps


def start_profiles(stack: ProdStack, folder: Path, step: Step) -> list[subprocess.Popen]:
    """py-spy on each of our processes for the step (code servers with their run workers): collapsed
    stacks in ``folder``, one file per process and step. py-spy samples from outside without pausing
    them (--nonblocking); its own CPU is the load generator's side of the machine."""
    folder.mkdir(parents=True, exist_ok=True)
    spy = str(Path(sys.executable).with_name("py-spy"))
    spies = []
    for name in PROFILED:
        service = stack.services.get(name)
        if service is None:
            continue
        out = folder / f"{step.label.replace(' ', '')}-{step.rate:g}-{name}.txt"
        cmd = [spy, "record", "--nonblocking", "-r", "50", "-f", "raw", "-o", str(out)]
        cmd += ["--subprocesses", "-p", str(service.process.pid)]
        spies.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return spies


def stop_profiles(spies: list[subprocess.Popen]) -> None:
    for spy in spies:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
    for spy in spies:
        try:
            spy.wait(30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait(5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rates",
        default=os.environ.get("BENCH_RATES", "5,10,15,20,25,30,40,50,60,80"),
        help="offered uploads per second, one step each (BENCH_RATES)",
    )
    parser.add_argument(
        "--step-s",
        type=seconds,
        default=float(os.environ.get("BENCH_STEP_S", "90")),
        help="duration of each step (BENCH_STEP_S)",
    )
    parser.add_argument("--clients", type=positive_int, default=16)
    parser.add_argument("--images", type=positive_int, default=120, help="distinct 1024x768 photos")
    parser.add_argument(
        "--big-rate", type=seconds, default=2.0, help="12 MP step: uploads per second (0: none)"
    )
    parser.add_argument("--big-step-s", type=seconds, default=30.0)
    parser.add_argument(
        "--drain-s", type=seconds, default=90.0, help="give up when nothing is processed for this long"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=(
            "an environment variable for the stack's processes (to measure a setting before and after); "
            f"defaults: {' '.join(f'{k}={v}' for k, v in ONE_MACHINE.items())}"
        ),
    )
    parser.add_argument(
        "--grace-s",
        type=seconds,
        default=60.0,
        help="the next step starts if 90%% of the uploads sent this long before a step's end are processed",
    )
    parser.add_argument(
        "--idle-s", type=float, default=20.0, help="seconds of no load measured first (0: none)"
    )
    parser.add_argument(
        "--empty-runs", type=int, default=3, help="empty runs measured before the load (0: none)"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="py-spy our processes during each step into DIR (collapsed stacks; measure CPU without it)",
    )
    args = parser.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    print(f"load: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")

    started = time.monotonic()
    bodies = [web_photo(seed) for seed in range(args.images)]
    big = [big_photo(seed) for seed in range(4)] if args.big_rate > 0 else []
    print(
        f"images: {len(bodies)} JPEGs 1024x768, {statistics.mean(map(len, bodies)) / 1000:.0f} KB on average; "
        f"{len(big)} 12 MP photos, {statistics.mean(map(len, big)) / 1e6 if big else 0:.1f} MB; made in {time.monotonic() - started:.0f} s"
    )
    work = work_ms(bodies[:40])
    work_big = work_ms(big, rounds=1) if big else float("nan")
    print(
        f"work per image (admission check + sha256 + metadata, one core): 1024x768 {work:.2f} ms, 12 MP {work_big:.1f} ms"
    )

    root = Path(tempfile.mkdtemp(prefix="bench-load-"))
    root.chmod(0o755)  # PostgreSQL runs as nobody when this is root
    env = {**ONE_MACHINE, **dict(pair.split("=", 1) for pair in args.env)}
    print(f"settings: {' '.join(f'{k}={v}' for k, v in sorted(env.items()))}")
    stack = ProdStack(root / "data", ProdPorts.free(code_servers(load_values())), env=env)
    try:
        stack.start()
        pause_batch_work(stack)
        print(
            f"stack up {time.monotonic() - started:.0f} s after the start; batch work paused: {', '.join(n for *_, n in BATCH_WORK)}"
        )
        if args.idle_s > 0:
            idle, connections = idle_cpu(stack, args.idle_s)
            print(
                f"idle ({args.idle_s:.0f} s, no uploads), CPU-s per second: {breakdown(idle, 1.0, '')}; "
                f"{connections:.1f} new PostgreSQL connections per second"
            )
        if args.empty_runs > 0:
            per_run, wall = empty_runs(stack, args.empty_runs)
            opened = per_run.pop("postgres connections")
            print(
                f"empty run (heartbeat_job, {args.empty_runs} one after another): {wall:.1f} s each (median) "
                f"from submit to success; CPU-s per run (idle share included): {breakdown(per_run, 1.0, '')}; "
                f"{opened:.0f} new PostgreSQL connections per run (idle ones included)"
            )
        catalog = Catalog.from_settings(stack.settings())
        steps = run_steps(
            stack,
            [Step(rate, args.step_s) for rate in rates],
            bodies,
            args.clients,
            catalog,
            args.profile,
            args.grace_s,
        )
        ids = [u.image_id for s in steps for u in s.accepted if u.image_id]
        big_steps = []
        if big:
            # The 12 MP step starts once the 1024x768 uploads are processed, so its figures are its own.
            drain(catalog, ids, args.drain_s)
            big_steps = run_steps(
                stack,
                [Step(args.big_rate, args.big_step_s, label="12 MP")],
                big,
                min(args.clients, 4),
                catalog,
                args.profile,
                args.grace_s,
            )
            ids += [u.image_id for s in big_steps for u in s.accepted if u.image_id]
        statuses = drain(catalog, ids, args.drain_s)
        lost = sum(s != "processed" for s in statuses.values())
        failed = sum(s == "failed" for s in statuses.values())
        print(
            f"\nafter the last step: {len(ids)} accepted uploads, {len(ids) - lost} processed, {failed} failed, {lost - failed} not processed"
        )
        processed, _ = processed_times(catalog, ids)
        runs = batch_runs(stack)
        results = [figures(step, processed, runs) for step in steps]
        big_results = [figures(step, processed, runs) for step in big_steps]
    finally:
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)
    for f in results:
        print_step("1024x768", f, work)
    for f in big_results:
        print_step("12 MP", f, work_big)

    if len(results) >= 2:
        # The code server with its runs: CPU = fixed x runs + marginal x images, fitted over the steps.
        a = np.array([[f.runs, f.accepted] for f in results], dtype=float)
        y = np.array([f.cpu.get("code-imagelake", 0.0) for f in results])
        (fixed, marginal), *_ = np.linalg.lstsq(a, y, rcond=None)
        print(
            f"\nbatch runs, fitted over the {len(results)} steps (the code server and its runs): {fixed:.1f} CPU-s "
            f"per run + {marginal * 1000:.1f} ms per image"
        )
    held = [f for f in results if f.held]
    best = held[-1] if held else results[0]
    if big_results:
        b = big_results[0]
        print(
            f"12 MP: ours {b.cpu_ms_per_img:.0f} ms per image vs work {work_big:.0f} ms (overhead {b.cpu_ms_per_img / work_big:.2f})"
        )
    overhead = best.cpu_ms_per_img / work
    print(
        f"\ntargets at the highest step that held ({best.offered:.0f}/s offered): e2e_img_s >= 0.9 x upload_rps "
        f"-> {best.e2e_img_s >= 0.9 * best.upload_rps}, lag not growing -> {not best.lag_growing}, "
        f"overhead <= 5 -> {overhead <= 5}, lost = 0 -> {lost == 0}"
        + ("" if held else " (no step held: the figures are the first step's)")
    )
    print(
        f"RESULT load upload_rps={best.upload_rps:.1f} upload_p95_ms={best.p95_ms:.0f} e2e_img_s={best.e2e_img_s:.1f} "
        f"lag_p95_s={best.lag_p95_s:.1f} cpu_ms_per_img={best.cpu_ms_per_img:.1f} work_ms_per_img={work:.2f} "
        f"overhead={overhead:.1f} lost={lost}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
