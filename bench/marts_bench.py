"""make bench-marts: a full warehouse build against the incremental build of one day.

Generates 7 days x 150,000 images of curated data (deterministic, reused
across runs: tests/support/lake_data.py), then in the same run times

* the full build: ``dbt build --full-refresh`` over every day of the lake,
  every model rebuilt from the whole lake (the daily aggregates, which a full
  refresh never drops, over all those days) and every data test run over
  every row (the baseline), and
* the incremental build of one day: ``dbt build`` with the window of today,
  as a Dagster partition run starts it.

Both are timed the same way: dbt invoked in this process with the project
parsed once beforehand, so the figures are the builds themselves, not Python
start-up and project parsing (the same few seconds for both; the ``dbt``
command-line figures are printed too). Best of ``--repeat`` runs, because the
machine is shared. The incremental build must leave the warehouse exactly as
it found it (row counts and checksums), or the benchmark fails.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from bench import dbt_floor
from bench.args import positive_int
from imagelake.lake.store import Lake
from imagelake.settings import PROJECT_ROOT, load_settings
from imagelake.warehouse.days import MAX_DATE_ENV, MIN_DATE_ENV, DayWindow
from tests.support import lake_data
from tests.support.warehouse_builds import fingerprint

DBT_PROJECT = PROJECT_ROOT / "dbt_project"


def generate(root: Path, days: int, images: int) -> list[str]:
    """Write the corpus once; a stamp names what is there, so a rerun reuses it."""
    today = datetime.now(UTC).date()
    stamp = root / f"corpus-{today}-{days}x{images}.done"
    if stamp.exists():
        return [f"reusing the corpus in {root}"]
    if root.exists():
        subprocess.run(["rm", "-rf", str(root)], check=True)
    lake = Lake((root / "lake").as_uri())
    started = time.monotonic()
    generated = []
    files = 0
    for day in lake_data.days_back(today, days):
        g = lake_data.generate_day(day, lake_data.DayShape(images=images, seed=2026))
        files += lake_data.write_day(lake, g)
        generated.append(g)
    for g in generated:
        moment = datetime.combine(g.day, datetime.min.time(), UTC) + timedelta(hours=23)
        lake_data.write_inventory(lake, moment, [x for x in generated if x.day <= g.day])
    stamp.touch()
    return [f"generated {days} days x {images:,} images ({files} files) in {time.monotonic() - started:.1f}s"]


def release_warehouse() -> None:
    """dbt-duckdb keeps its database open for the life of the process; close it, so this
    process can read the warehouse between builds (timed builds pay to reopen it)."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    with DuckDBConnectionManager._LOCK:
        if DuckDBConnectionManager._ENV is not None:
            DuckDBConnectionManager._ENV.close()
            DuckDBConnectionManager._ENV = None


def parsed_build(where: list[str], what: str) -> tuple[Any, Callable[..., None]]:
    """Parse a dbt project once, in this process: its manifest, and a ``dbt build`` with the
    warehouse run's flags (and any extra ones) that closes the database after itself and stops
    the benchmark if the build fails."""
    from dbt.cli.main import dbtRunner  # imported after the environment is set

    from assets.warehouse import BUILD_ARGS  # what a warehouse run runs, flags included

    parsed = dbtRunner().invoke(["parse", *where])
    if not parsed.success:
        raise SystemExit(f"dbt parse of {what} failed: {parsed.exception}")
    runner = dbtRunner(manifest=parsed.result)

    def build(*extra: str) -> None:
        result = runner.invoke([*BUILD_ARGS, *extra, *where])
        release_warehouse()
        if not result.success:
            raise SystemExit(
                f"dbt build {' '.join(extra)} of {what} failed: {result.exception or 'see its dbt log'}"
            )

    return parsed.result, build


def floor(root: Path, shape: dbt_floor.Shape) -> Callable[[], None]:
    """A build of dbt's floor project (bench/dbt_floor.py), set up and parsed once and built
    once untimed, on as many dbt threads as the local warehouse."""
    profiles = yaml.safe_load((DBT_PROJECT / "profiles.yml").read_text())
    threads = profiles["imagelake"]["outputs"]["local"]["threads"]
    if root.exists():
        subprocess.run(["rm", "-rf", str(root)], check=True)
    dbt_floor.write_project(root, shape, threads=threads)
    where = [
        "--project-dir",
        str(root),
        "--profiles-dir",
        str(root),
        "--target-path",
        str(root / "target"),
        "--quiet",
    ]
    _, build = parsed_build(where, "the floor project")
    build()
    return build


def timed(action: Callable[[], None]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=positive_int, default=7)
    parser.add_argument("--images", type=positive_int, default=150_000, help="images per day")
    parser.add_argument(
        "--repeat", type=positive_int, default=2, help="timed runs of each build (best is kept)"
    )
    parser.add_argument("--workdir", type=Path, default=PROJECT_ROOT / ".cache" / "bench-marts")
    parser.add_argument("--no-cli", action="store_true", help="skip the dbt command-line figures")
    args = parser.parse_args(argv)
    args.workdir = args.workdir.resolve()  # the lake is addressed by a file:// URL, which must be absolute

    for line in generate(args.workdir, args.days, args.images):
        print(line, flush=True)
    settings = load_settings({"IMAGELAKE_DATA_DIR": str(args.workdir)})
    settings.warehouse_path.unlink(missing_ok=True)
    today = datetime.now(UTC).date()
    window = DayWindow(today, today)
    every_day = lake_data.days_back(today, args.days)
    whole_lake = DayWindow(min(every_day), max(every_day))
    os.environ.update(settings.dbt_env())
    os.environ.update(
        {"DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DBT_TARGET_PATH": str(args.workdir / "target")}
    )

    where = [
        "--project-dir",
        str(DBT_PROJECT),
        "--profiles-dir",
        str(DBT_PROJECT),
        "--target",
        "local",
        "--quiet",
    ]
    manifest, build = parsed_build(where, "the warehouse")

    def dbt(*extra: str, window_env: dict[str, str] | None = None) -> Callable[[], None]:
        def run() -> None:
            for name in (MIN_DATE_ENV, MAX_DATE_ENV):
                os.environ.pop(name, None)
            os.environ.update(window_env or {})
            build(*extra)

        return run

    empty_day = today - timedelta(days=60)  # no data: what any build costs before it reads a row
    empty = DayWindow(empty_day, empty_day)
    shape = dbt_floor.shape_of(n.resource_type for n in manifest.nodes.values())
    floor_build = floor(args.workdir / "dbt-floor", shape)
    full_times, incremental_times, empty_times, floor_times = [], [], [], []
    for _ in range(args.repeat):
        full_times.append(timed(dbt("--full-refresh", window_env=whole_lake.dbt_env())))
        before = fingerprint(settings)
        print(f"full build: {full_times[-1]:.2f}s", flush=True)
        incremental_times.append(timed(dbt(window_env=window.dbt_env())))
        print(f"incremental build of {window}: {incremental_times[-1]:.2f}s", flush=True)
        empty_times.append(timed(dbt(window_env=empty.dbt_env())))
        print(f"build of an empty day: {empty_times[-1]:.2f}s", flush=True)
        floor_times.append(timed(floor_build))
        print(
            f"dbt's floor, a project of the same shape that reads nothing: {floor_times[-1]:.2f}s", flush=True
        )
        if fingerprint(settings) != before:
            raise SystemExit("the incremental build changed the warehouse: re-running a day must not")

    cli = {}
    if not args.no_cli:
        from assets.warehouse import BUILD_ARGS

        command = [str(Path(sys.executable).with_name("dbt")), *BUILD_ARGS, *where]
        env = {**os.environ}
        env.pop(MIN_DATE_ENV, None)
        env.pop(MAX_DATE_ENV, None)
        cli["full"] = timed(
            lambda: subprocess.run(
                [*command, "--full-refresh"], env={**env, **whole_lake.dbt_env()}, check=True
            )
        )
        cli["incremental"] = timed(
            lambda: subprocess.run(command, env={**env, **window.dbt_env()}, check=True)
        )

    full, incremental, fixed, least = (
        min(full_times),
        min(incremental_times),
        min(empty_times),
        min(floor_times),
    )
    rows = fingerprint(settings)
    print()
    print(
        f"corpus: {args.days} days x {args.images:,} images; warehouse rows: "
        + ", ".join(f"{t.split('.')[-1]}={n:,}" for t, (n, _) in rows.items())
    )
    print(f"{'build':<34}{'best s':>9}{'median s':>10}{'runs':>6}")
    print(f"{'full (baseline)':<34}{full:>9.2f}{statistics.median(full_times):>10.2f}{len(full_times):>6}")
    print(
        f"{'incremental, one day (ours)':<34}{incremental:>9.2f}{statistics.median(incremental_times):>10.2f}"
        f"{len(incremental_times):>6}"
    )
    print(
        f"{'empty day (fixed cost of a build)':<34}{fixed:>9.2f}{statistics.median(empty_times):>10.2f}"
        f"{len(empty_times):>6}"
    )
    print(
        f"{'dbt floor (same shape, no work)':<34}{least:>9.2f}{statistics.median(floor_times):>10.2f}"
        f"{len(floor_times):>6}  {shape.models} models, {shape.data_tests} data tests"
    )
    if incremental > fixed:
        print(
            f"work beyond the fixed cost: full {full - fixed:.2f}s, one day {incremental - fixed:.2f}s, "
            f"ratio {(full - fixed) / (incremental - fixed):.2f}"
        )
    if full > fixed:
        ideal = fixed + (full - fixed) / args.days  # the fixed cost plus a 1/days share of the full work
        print(
            f"with this fixed cost, a build of 1 of {args.days} days that does exactly its share of the work "
            f"would take {ideal:.2f}s: ratio {full / ideal:.2f}"
        )
    if full > least:
        work = full - least  # all the full build does beyond dbt's floor
        best = full / (least + work / args.days)
        print(
            f"the most a build of 1 of {args.days} days can gain over the full build while dbt costs "
            f"{least:.2f}s for these nodes: ratio {best:.2f} (if all else is the day's share of the work)"
        )
    if cli:
        print(
            f"dbt command line, once each: full {cli['full']:.2f}s, incremental {cli['incremental']:.2f}s, "
            f"ratio {cli['full'] / cli['incremental']:.2f} (start-up and parsing included)"
        )
    print(f"RESULT marts full_s={full:.2f} incremental_s={incremental:.2f} ratio={full / incremental:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
