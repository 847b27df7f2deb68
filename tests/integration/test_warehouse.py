"""dbt on DuckDB over the lake, run through Dagster as the code location runs it.

Most tests start from one warehouse built over three generated days
(tests/support/lake_data.py) and work on a copy of it, so each pays for one or
two dbt builds only. Every mart is checked against the curated data with an
independent pandas implementation (tests/support/marts_oracle.py).
"""

import shutil
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from dagster_dbt import DbtCliInvocation

import imagelake.warehouse.build_turns as build_turns
from imagelake.lake.layout import IMAGE_METADATA, BatchId, batch_file_key
from imagelake.lake.store import Lake
from imagelake.lake.tables import to_parquet_bytes
from imagelake.settings import get_settings, load_settings
from imagelake.warehouse.build_turns import environment
from imagelake.warehouse.days import DayWindow
from imagelake.warehouse.locks import is_locked
from orchestration.dbt_resource import DBT_PROJECT_DIR, dbt_resource
from orchestration.lake_freshness import FILLED_BY
from orchestration.resources import KafkaResource
from tests.integration.test_realtime import run_batch
from tests.support import lake_data, marts_oracle
from tests.support import sample_images as images
from tests.support.lake_data import DayShape
from tests.support.uploads import producer, send, store_and_announce
from tests.support.warehouse_builds import (
    DETAIL_TABLES,
    assert_marts_match_lake,
    build,
    fingerprint,
    query,
    storage_blocks,
)

pytestmark = pytest.mark.integration

TODAY = datetime.now(UTC).date()
DAYS = lake_data.days_back(TODAY, 3)
WINDOW = DayWindow(DAYS[0], DAYS[-1])
SHAPE = DayShape(
    images=400, seed=5, clients=12, batch_size=60, redelivered_share=0.03, dead_letter_share=0.01
)


def use_data_dir(monkeypatch: pytest.MonkeyPatch, data_dir: Path):
    """Point the process-wide settings (what the dbt asset reads) at ``data_dir``."""
    monkeypatch.setenv("IMAGELAKE_ENV", "local")
    monkeypatch.setenv("IMAGELAKE_DATA_DIR", str(data_dir))
    get_settings.cache_clear()
    return get_settings()


def write_days(lake: Lake, days, shape: DayShape = SHAPE) -> list[lake_data.GeneratedDay]:
    generated = [lake_data.generate_day(day, shape) for day in days]
    for g in generated:
        lake_data.write_day(lake, g)
    for g in generated:  # the garbage collector's daily listing
        lake_data.write_inventory(
            lake, datetime.combine(g.day, datetime.min.time(), UTC) + timedelta(hours=23), generated
        )
    return generated


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    """A warehouse built over three generated days; tests copy it before changing anything."""
    data_dir = tmp_path_factory.mktemp("built") / "data"
    with pytest.MonkeyPatch.context() as mp:
        settings = use_data_dir(mp, data_dir)
        write_days(Lake.from_settings(settings), DAYS)
        with dg.instance_for_test() as instance:
            result = build(settings, instance, WINDOW)
        get_settings.cache_clear()
    assert result.success
    return data_dir, result


@pytest.fixture
def warehouse(built, tmp_path, monkeypatch):
    """A private copy of the built warehouse and its lake, with settings pointing at it."""
    data_dir = tmp_path / "data"
    shutil.copytree(built[0], data_dir)
    settings = use_data_dir(monkeypatch, data_dir)
    yield settings, Lake.from_settings(settings)
    get_settings.cache_clear()


def lake_root(settings) -> Path:
    return Path(settings.lake_root_for_sql)


def test_every_mart_holds_the_figures_of_the_curated_data(built):
    data_dir, result = built
    settings = load_settings({"IMAGELAKE_DATA_DIR": str(data_dir)})
    assert_marts_match_lake(settings, lake_root(settings))
    # redelivered events and dead letters are in the lake, and were each counted once
    in_lake = len(marts_oracle.read_table(lake_root(settings), "upload_events"))
    assert in_lake > 3 * SHAPE.images
    assert query(settings, "select count(*) from staging.stg_upload_events") == [(3 * SHAPE.images,)]
    assert query(settings, "select sum(dead_letters) from marts.daily_upload_stats")[0][0] == 3 * 4
    checks = result.get_asset_check_evaluations()
    assert len(checks) >= 40 and all(c.passed for c in checks), [c.check_name for c in checks if not c.passed]
    mats = result.get_asset_materialization_events()
    assert {m.materialization.metadata["days"].value for m in mats} == {str(WINDOW)}
    # Every table's materialization says how many rows it holds; views are not counted.
    counted = {
        m.asset_key.to_user_string(): m.materialization.metadata.get("dagster/row_count") for m in mats
    }
    assert counted["intermediate/int_images"].value == 3 * SHAPE.images
    assert counted["marts/daily_upload_stats"].value == 3
    assert (
        counted["marts/duplicate_images"].value
        == query(settings, "select count(*) from marts.duplicate_images")[0][0]
    )
    assert counted["staging/stg_upload_events"] is None


def test_counts_and_bytes_in_the_marts_are_64_bit_integers(built):
    """DuckDB sums integers into 128-bit HUGEINTs, which pandas reads as floats (15.0 duplicates)
    and Redshift does not have: every whole-number column of a mart is a BIGINT or narrower."""
    settings = load_settings({"IMAGELAKE_DATA_DIR": str(built[0])})
    types = query(
        settings,
        "select table_schema || '.' || table_name || '.' || column_name, data_type"
        " from information_schema.columns where table_schema in ('marts', 'intermediate')",
    )
    assert len(types) > 60
    assert [(column, t) for column, t in types if t == "HUGEINT"] == []
    frame = duckdb.connect(str(settings.warehouse_path), read_only=True).sql(
        "select images, bytes, duplicate_images from marts.daily_upload_stats"
    )
    assert {str(t) for t in frame.df().dtypes} == {"int64"}


def test_rerunning_a_day_changes_no_row(warehouse):
    settings, _ = warehouse
    before = fingerprint(settings)
    blocks = {table: storage_blocks(settings, table) for table in DETAIL_TABLES}
    assert all(blocks.values())
    with dg.instance_for_test() as instance:
        result = build(settings, instance, DayWindow(DAYS[1], DAYS[1]))
    assert result.success
    assert fingerprint(settings) == before
    # Nothing changed, so nothing of the per-image tables was deleted or written again.
    assert {table: storage_blocks(settings, table) for table in DETAIL_TABLES} == blocks
    # A successful build leaves none of dbt's per-build files behind (they would pile up).
    assert not list((DBT_PROJECT_DIR / "target").glob(f"warehouse_models-{result.run_id[:7]}-*"))


def test_a_rerun_writes_the_rows_that_changed_and_keeps_the_rest(warehouse):
    """A forced re-run of the derivatives job for one batch of DAYS[1] writes them again an hour
    later, one byte larger each: those images' rows change, and a re-run of the day gives what a
    full rebuild gives. When the derivatives were ready stays their first write: a re-render
    does not make the latency mart say they took an hour longer."""
    settings, lake = warehouse
    day = DAYS[1]
    generated = lake_data.generate_day(day, SHAPE).tables
    _, metadata = generated["image_metadata"][0]
    written = pa.concat_tables([t for _, t in generated["derivatives"]])
    # A re-render writes again what was written; a derivative that failed has no bytes to grow.
    redone = written.filter(
        pc.and_(pc.is_in(written["image_id"], metadata["image_id"]), pc.equal(written["status"], "written"))
    )
    changes = (
        ("created_at", lambda t: t + timedelta(hours=1)),
        ("size_bytes", lambda n: n + 1),
        ("run_id", lambda _: "derivatives-forced"),
    )
    for column, change in changes:
        field = redone.schema.field(column)
        values = pa.array([change(v) for v in redone[column].to_pylist()], field.type)
        redone = redone.set_column(redone.schema.get_field_index(column), field, values)
    lake.put(batch_file_key("derivatives", day.isoformat(), "forced-rerun"), to_parquet_bytes(redone))
    figures = "select image_id, derivative_bytes, derivatives_ready_at from intermediate.int_images"
    latency = "select * from marts.processing_latency_daily order by upload_date"
    before, latency_before = {r[0]: r[1:] for r in query(settings, figures)}, query(settings, latency)
    with dg.instance_for_test() as instance:
        assert build(settings, instance, DayWindow(day, day)).success
    after = {r[0]: r[1:] for r in query(settings, figures)}
    changed = {image_id for image_id in before if after[image_id] != before[image_id]}
    assert changed == set(redone["image_id"].to_pylist()) and len(changed) > 10
    assert all(after[i][0] > before[i][0] and after[i][1] == before[i][1] for i in changed)
    assert query(settings, latency) == latency_before
    assert_marts_match_lake(settings, lake_root(settings))
    incremental = fingerprint(settings)
    with dg.instance_for_test() as instance:
        assert build(settings, instance, WINDOW, full_refresh=True).success
    assert fingerprint(settings) == incremental


#: The daily aggregates, kept for good: longer than the lake holds the days they summarise.
KEPT_FOR_GOOD = {
    "marts.daily_upload_stats": "upload_date",
    "marts.client_usage_daily": "upload_date",
    "marts.storage_usage_daily": "usage_date",
    "marts.processing_latency_daily": "upload_date",
}


def test_a_full_refresh_keeps_the_daily_aggregates_of_days_the_lake_no_longer_holds(warehouse):
    settings, _ = warehouse
    expired = TODAY - timedelta(days=60)  # its images and lake files are long gone
    with duckdb.connect(str(settings.warehouse_path)) as con:
        for table, day_column in KEPT_FOR_GOOD.items():
            con.execute(  # that day's row, as a build sixty days ago left it
                f"insert into {table} by name select * replace (date '{expired}' as {day_column}) "
                f"from {table} order by {day_column} limit 1"
            )
    history = {
        t: query(settings, f"select * from {t} where {c} = '{expired}'") for t, c in KEPT_FOR_GOOD.items()
    }
    assert all(len(rows) >= 1 for rows in history.values())
    built = fingerprint(settings)
    with dg.instance_for_test() as instance:
        assert build(settings, instance, WINDOW, full_refresh=True).success
    for table, day_column in KEPT_FOR_GOOD.items():
        assert query(settings, f"select * from {table} where {day_column} = '{expired}'") == history[table]
    assert fingerprint(settings) == built  # the days the lake holds: rebuilt to the same figures
    assert_marts_match_lake(settings, lake_root(settings), days=list(DAYS))


def test_per_image_detail_holds_the_days_the_lake_holds_and_no_older(warehouse):
    """The day ``retention_days`` ago stays (garbage collection keeps it too: imagelake/batch/garbage_collection.py)."""
    settings, _ = warehouse
    today = datetime.now(UTC).date()  # the build's day, not the module's: a run may cross midnight
    oldest_kept, gone = today - timedelta(days=7), today - timedelta(days=8)
    with duckdb.connect(str(settings.warehouse_path)) as con:
        for n, day in enumerate((oldest_kept, gone)):
            for table in DETAIL_TABLES:  # an image of that day and its duplicate verdict
                con.execute(
                    f"insert into {table} by name select * replace ('old-{n}' as image_id, "
                    f"date '{day}' as upload_date) from {table} limit 1"
                )
    with dg.instance_for_test() as instance:
        assert build(settings, instance, DayWindow(today, today)).success
    for table in DETAIL_TABLES:
        assert query(settings, f"select image_id from {table} where image_id like 'old-%'") == [("old-0",)]


def test_events_three_days_late_are_counted_on_their_upload_day(warehouse):
    settings, lake = warehouse
    late_day = TODAY - timedelta(days=3)  # before the built window, as a late batch would be
    write_days_without_inventory(lake, [late_day], DayShape(images=25, seed=9, clients=3))
    before = {r[0]: r[1] for r in query(settings, "select upload_date, images from marts.daily_upload_stats")}
    assert late_day not in before
    with dg.instance_for_test() as instance:
        # the window the refresh sensor derives from the late batch's files (test_warehouse_sensor.py)
        assert build(settings, instance, DayWindow(late_day, TODAY)).success
    after = {r[0]: r[1] for r in query(settings, "select upload_date, images from marts.daily_upload_stats")}
    assert after == {**before, late_day: 25}
    assert_marts_match_lake(settings, lake_root(settings), days=[late_day, *DAYS])


def write_days_without_inventory(lake: Lake, days, shape: DayShape) -> list[lake_data.GeneratedDay]:
    generated = [lake_data.generate_day(day, shape) for day in days]
    for g in generated:
        lake_data.write_day(lake, g)
    return generated


def test_an_empty_day_gives_zero_rows_and_no_failure(warehouse):
    settings, _ = warehouse
    empty = [TODAY - timedelta(days=5), TODAY - timedelta(days=4)]  # nothing in the lake for these
    before = fingerprint(settings)
    with dg.instance_for_test() as instance:
        result = build(settings, instance, DayWindow(empty[0], DAYS[0]))  # empty days and a full one
    assert result.success and all(c.passed for c in result.get_asset_check_evaluations())
    assert fingerprint(settings) == before
    for table in ("marts.daily_upload_stats", "marts.client_usage_daily", "marts.processing_latency_daily"):
        days = [r[0] for r in query(settings, f"select distinct upload_date from {table}")]
        assert not set(days) & set(empty), table


def test_a_corrupt_lake_file_fails_the_build_loudly_and_keeps_the_warehouse_and_dbts_files(warehouse):
    settings, _ = warehouse
    before = fingerprint(settings)
    bad = lake_root(settings) / batch_file_key(IMAGE_METADATA, str(TODAY), "not-parquet")
    bad.write_bytes(b"this is not a parquet file")
    with dg.instance_for_test() as instance:
        result = build(settings, instance, DayWindow(TODAY, TODAY), raise_on_error=False)
        logs = [e.message for e in instance.all_logs(result.run_id)]
    assert not result.success
    assert fingerprint(settings) == before  # the failed day's rows were not replaced
    kept = [m for m in logs if "dbt's files of this build" in m]
    assert kept, "the run log does not say where dbt's files of the failed build are"
    folder = Path(kept[0].rsplit(" are kept in ", 1)[1])
    assert (folder / "dbt.log").exists()
    assert "not-parquet.parquet" in (folder / "dbt.log").read_text()
    shutil.rmtree(folder)


def test_a_new_nullable_column_in_the_curated_parquet_still_builds(warehouse):
    settings, lake = warehouse
    shape = DayShape(images=30, seed=11, clients=4, extra_metadata_columns={"aesthetic_score": pa.float32()})
    write_days_without_inventory(lake, [TODAY], shape)
    with dg.instance_for_test() as instance:
        result = build(settings, instance, DayWindow(TODAY, TODAY))
    assert result.success and all(c.passed for c in result.get_asset_check_evaluations())
    assert_marts_match_lake(settings, lake_root(settings))
    assert query(settings, f"select images from marts.daily_upload_stats where upload_date = '{TODAY}'") == [
        (SHAPE.images + 30,)
    ]


def test_a_day_rerun_while_another_days_run_is_in_progress_loses_nothing(warehouse):
    settings, lake = warehouse
    extra_first = write_days_without_inventory(lake, [DAYS[0]], DayShape(images=40, seed=21, clients=5))
    extra_last = write_days_without_inventory(lake, [DAYS[2]], DayShape(images=50, seed=22, clients=5))
    assert extra_first and extra_last
    lock = settings.warehouse_path.with_name(settings.warehouse_path.name + ".lock")
    results: dict[str, dg.ExecuteInProcessResult] = {}
    with dg.instance_for_test() as instance:

        def run(name: str, day) -> None:
            results[name] = build(settings, instance, DayWindow(day, day), raise_on_error=False)

        first = threading.Thread(target=run, args=("first", DAYS[0]))
        first.start()
        deadline = datetime.now(UTC) + timedelta(seconds=120)
        while not is_locked(lock):  # the first run's dbt build is under way
            assert first.is_alive() and datetime.now(UTC) < deadline, "the first run never started building"
        second = threading.Thread(target=run, args=("second", DAYS[2]))
        second.start()
        first.join(300)
        second.join(300)
        assert results["first"].success and results["second"].success
        waited = [
            entry.user_message
            for entry in instance.all_logs(results["second"].run_id)
            if "waiting for another build to release" in entry.user_message
        ]
    assert waited, "the second run should have waited for the first one's build"
    daily = dict(query(settings, "select upload_date, images from marts.daily_upload_stats"))
    assert daily == {DAYS[0]: SHAPE.images + 40, DAYS[1]: SHAPE.images, DAYS[2]: SHAPE.images + 50}
    assert_marts_match_lake(settings, lake_root(settings))


def test_a_build_waits_for_an_analysts_open_session_and_then_builds(warehouse, monkeypatch):
    """A duckdb session left open, even read-only, keeps DuckDB's one writer out: the build waits,
    says why, and builds once it closes; past the wait it fails saying what to do, changing nothing."""
    settings, lake = warehouse
    write_days_without_inventory(lake, [DAYS[2]], DayShape(images=20, seed=31, clients=2))
    before = fingerprint(settings)
    monkeypatch.setattr(build_turns, "READER_WAIT_S", 2)
    session = duckdb.connect(str(settings.warehouse_path), read_only=True)
    with dg.instance_for_test() as instance:
        failed = build(settings, instance, DayWindow(DAYS[2], DAYS[2]), raise_on_error=False)
        assert not failed.success
        errors = [e.step_failure_data.error.cause for e in failed.all_events if e.is_step_failure]
        assert len(errors) == 1 and errors[0].cls_name == "LockTimeout", errors
        assert "open in another process" in errors[0].message and "lsof" in errors[0].message
    assert fingerprint(settings) == before

    monkeypatch.setattr(build_turns, "READER_WAIT_S", 120)

    def waiting_said(instance) -> bool:
        return any(
            "keeps DuckDB's one writer" in e.user_message
            for run in instance.get_runs()
            for e in instance.all_logs(run.run_id)
        )

    with dg.instance_for_test() as instance:
        outcome = {}
        runner = threading.Thread(
            target=lambda: outcome.update(result=build(settings, instance, DayWindow(DAYS[2], DAYS[2])))
        )
        runner.start()
        deadline = time.monotonic() + 120
        while not waiting_said(instance):  # the analyst closes the session once the build waits for it
            assert runner.is_alive() and time.monotonic() < deadline, "the build never said it waits"
            time.sleep(0.2)
        session.close()
        runner.join(300)
    assert outcome["result"].success
    assert query(
        settings, f"select images from marts.daily_upload_stats where upload_date = '{DAYS[2]}'"
    ) == [(SHAPE.images + 20,)]


def dbt_cli(settings, args: list[str], *, raise_on_error: bool = True) -> DbtCliInvocation:
    """A dbt command on the test's warehouse, its files kept with the test's data, not in the checkout."""
    target = settings.data_dir / "dbt-target" / uuid.uuid4().hex[:8]
    with environment(settings.dbt_env()):
        invocation = dbt_resource(settings).cli(args, raise_on_error=raise_on_error, target_path=target)
        invocation.wait()
    return invocation


def test_dbt_unit_tests_pass(warehouse):
    """The unit tests (percentiles, duplicates) that refresh runs leave out; CI runs them here."""
    settings, _ = warehouse
    invocation = dbt_cli(settings, ["test", "--select", "test_type:unit"], raise_on_error=False)
    results = invocation.get_artifact("run_results.json")["results"]
    assert len(results) == 2 and {r["status"] for r in results} == {"pass"}, results


@pytest.mark.parametrize(
    ("test_name", "corruption"),
    [
        ("daily_upload_mix_adds_up", "update marts.daily_upload_stats set png_images = png_images + 1"),
        ("daily_upload_mix_adds_up", "update marts.daily_upload_stats set pending_images = images + 1"),
        (
            "latency_percentiles_are_ordered",
            "update marts.processing_latency_daily set processed_p50_s = processed_max_s + 1",
        ),
    ],
)
def test_the_singular_tests_fail_on_a_mart_that_breaks_them(warehouse, test_name, corruption):
    """The whole-row checks of the aggregates pass on a good build and catch a broken one."""
    settings, _ = warehouse

    def status() -> str:
        invocation = dbt_cli(settings, ["test", "--select", test_name], raise_on_error=False)
        (result,) = invocation.get_artifact("run_results.json")["results"]
        return result["status"]

    assert status() == "pass"
    with duckdb.connect(str(settings.warehouse_path)) as con:
        con.execute(f"{corruption} where upload_date = '{DAYS[1]}'")
    assert status() == "fail"


def test_empty_lake_builds_empty_marts(imagelake_env):
    settings = imagelake_env()
    with dg.instance_for_test() as instance:
        result = build(settings, instance, DayWindow(TODAY, TODAY))
    assert result.success
    for mart in ("daily_upload_stats", "client_usage_daily", "duplicate_images", "storage_usage_daily"):
        assert query(settings, f"select count(*) from marts.{mart}") == [(0,)]
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks)


def build_views(settings, *extra: str) -> dict[str, str]:
    """dbt's own run of the views alone: what each one's materialization did ("OK" or "UNCHANGED")."""
    invocation = dbt_cli(settings, ["run", "--select", "config.materialized:view", *extra])
    results = invocation.get_artifact("run_results.json")["results"]
    return {r["unique_id"].rsplit(".", 1)[1]: r["adapter_response"]["_message"] for r in results}


def test_a_view_is_created_again_only_when_its_sql_changes(imagelake_env):
    """Refreshes leave unchanged views alone (macros/view_unchanged.sql); new SQL or a full refresh replaces them."""
    settings = imagelake_env()
    settings.warehouse_path.parent.mkdir(parents=True)
    created = build_views(settings)
    assert len(created) == 6 and set(created.values()) == {"OK"}, created  # 5 staging views, 1 intermediate
    assert set(build_views(settings).values()) == {"UNCHANGED"}

    # The lake's first files turn each staging view from its empty stand-in into a read of the files.
    lake = Lake.from_settings(settings)
    write_days(lake, [TODAY])
    after_files = build_views(settings)
    assert {name for name, done in after_files.items() if done == "OK"} == {
        n for n in created if n.startswith("stg_")
    }
    assert after_files["int_derivatives_by_image"] == "UNCHANGED"

    # Views left alone still read every file: the lake's newest rows reach the marts.
    write_days_without_inventory(lake, [TODAY], DayShape(images=20, seed=31))
    with dg.instance_for_test() as instance:
        result = build(settings, instance, DayWindow(TODAY, TODAY))
    assert result.success and all(c.passed for c in result.get_asset_check_evaluations())
    assert query(settings, f"select images from marts.daily_upload_stats where upload_date = '{TODAY}'") == [
        (SHAPE.images + 20,)
    ]
    assert_marts_match_lake(settings, lake_root(settings), days=[TODAY])

    # A view whose comment someone else changed, and every view on a full refresh, is created again.
    with duckdb.connect(str(settings.warehouse_path)) as con:
        con.execute("comment on view staging.stg_dead_letters is 'edited by hand'")
    edited = build_views(settings)
    assert edited["stg_dead_letters"] == "OK"
    assert {done for name, done in edited.items() if name != "stg_dead_letters"} == {"UNCHANGED"}
    assert set(build_views(settings, "--full-refresh").values()) == {"OK"}


def test_mart_counts_each_upload_once_even_when_events_and_batches_repeat(
    imagelake_env, kafka_bootstrap, topic
):
    settings = imagelake_env(IMAGELAKE_KAFKA_BOOTSTRAP=kafka_bootstrap, IMAGELAKE_UPLOADS_TOPIC=topic)
    lake = Lake.from_settings(settings)
    kafka = KafkaResource(bootstrap=kafka_bootstrap, topic=topic)
    prod = producer(kafka_bootstrap)
    sent = [store_and_announce(lake, prod, topic, images.jpeg(seed=i), partition=0) for i in range(3)]
    sent.append(
        store_and_announce(lake, prod, topic, images.png(seed=7), fmt="PNG", partition=0, client_id="other")
    )
    send(prod, topic, sent[0].encode(), key=sent[0].image_id, partition=0)  # at-least-once: delivered twice
    day = datetime.fromisoformat(sent[0].dt).date()
    with dg.instance_for_test() as instance:
        batch = str(BatchId(topic, 0, 0, 4))
        assert run_batch(instance, batch, lake, kafka).success
        assert run_batch(instance, batch, lake, kafka).success  # the same batch run twice
        assert build(settings, instance, DayWindow(day, day)).success
        first = query(settings, "select * from marts.daily_upload_stats")
        assert build(settings, instance, DayWindow(day, day)).success  # and the warehouse rebuilt
    [(day_, images_, bytes_, clients, jpeg, png, *_)] = first
    assert str(day_) == sent[0].dt
    assert (images_, clients, jpeg, png) == (4, 2, 3, 1)
    assert bytes_ == sum(e.size_bytes for e in sent)
    assert query(settings, "select * from marts.daily_upload_stats") == first
    shas = {r[0] for r in query(settings, "select sha256 from staging.stg_image_metadata")}
    assert shas == {e.sha256 for e in sent}


def test_a_lake_whose_files_predate_a_column_still_builds(warehouse):
    """Derivatives files written before the job carried first_written_at: an upgrade must not
    stop the build until new files come (a quiet lake may write none for days)."""
    settings, _ = warehouse
    for path in (lake_root(settings) / "curated" / "derivatives").rglob("*.parquet"):
        table = pq.read_table(path)
        pq.write_table(table.drop_columns(["first_written_at"]), path)
    with dg.instance_for_test() as instance:
        assert build(settings, instance, WINDOW).success
    assert_marts_match_lake(settings, lake_root(settings))  # derivatives counted from their written rows


def test_source_freshness_flags_a_lake_table_that_stopped_getting_data(warehouse):
    settings, _ = warehouse
    derivatives = lake_root(settings) / "curated" / "derivatives"
    for day in DAYS[1:]:  # the derivatives job has not run since noon two days ago
        shutil.rmtree(derivatives / f"dt={day}")
    # The first day's late images got derivatives after its midnight; drop those too, so the
    # newest derivative is at least 36 hours old at any time of today (and of tomorrow).
    noon = datetime.combine(DAYS[0], datetime.min.time(), UTC) + timedelta(hours=12)
    for path in (derivatives / f"dt={DAYS[0]}").glob("*.parquet"):
        table = pq.read_table(path)
        pq.write_table(
            table.filter(pc.less(table["created_at"], pa.scalar(noon, table["created_at"].type))), path
        )
    invocation = dbt_cli(settings, ["source", "freshness"], raise_on_error=False)
    status = {
        r["unique_id"].split(".")[-1]: r["status"] for r in invocation.get_artifact("sources.json")["results"]
    }
    assert status == {
        "upload_events": "pass",
        "image_metadata": "pass",
        "derivatives": "error",
        "storage_inventory": "pass",
    }


def test_the_example_queries_of_the_docs_run_here_pass_the_redshift_gate_and_keep_integers(built):
    """docs/analysts.md and the README: every query, with integer sums pandas reads as int64."""
    from tests.support.redshift_gate import redshift_problems

    data_dir, _ = built
    settings = load_settings({"IMAGELAKE_DATA_DIR": str(data_dir)})
    root = Path(__file__).parents[2]
    text = (root / "docs" / "analysts.md").read_text() + (root / "README.md").read_text()
    queries = [block.split("```")[0] for block in text.split("```sql")[1:]]
    assert len(queries) >= 7
    for sql in queries:
        assert redshift_problems(sql) == [], sql
        # "today" is the data's last day, even when the run has crossed midnight UTC since
        as_of_data = sql.replace("current_date", f"date '{DAYS[-1]}'")
        with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
            result = con.sql(as_of_data)
            types = {name: str(kind) for name, kind in zip(result.columns, result.types, strict=True)}
            assert result.fetchall(), f"no rows from:\n{sql}"
        assert "HUGEINT" not in types.values(), f"a 128-bit sum (pandas reads a float): {types}\n{sql}"


def test_source_freshness_of_a_lake_table_with_no_file_yet_says_so(warehouse):
    """A fresh install: the derivatives job has never run."""
    settings, _ = warehouse
    shutil.rmtree(lake_root(settings) / "curated" / "derivatives")
    invocation = dbt_cli(settings, ["source", "freshness"], raise_on_error=False)
    status = {
        r["unique_id"].split(".")[-1]: r["status"] for r in invocation.get_artifact("sources.json")["results"]
    }
    assert status == {"upload_events": "pass", "image_metadata": "pass", "storage_inventory": "pass"}
    told = str(invocation.get_error())  # dbt's error lines
    assert "lake table derivatives has no data yet" in told and "derivatives_job" in told, told


def test_make_warehouse_freshness_on_a_new_install_says_which_job_fills_each_table_and_succeeds(
    imagelake_env,
):
    """`make warehouse-freshness` right after `make dev` first started: no lake table has a file yet."""
    imagelake_env()
    done = subprocess.run(
        [sys.executable, "-m", "orchestration.lake_freshness"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for table, (job, command) in FILLED_BY.items():
        assert f"lake table {table}: no data yet, filled by {job}; run it with:\n    {command}" in done.stdout
    assert "-j derivatives_job" in done.stdout  # the job the Runs page will show, not __ASSET_JOB


def test_make_warehouse_freshness_checks_the_tables_with_data_and_reports_the_others(warehouse):
    settings, _ = warehouse
    shutil.rmtree(lake_root(settings) / "curated" / "derivatives")
    done = subprocess.run(
        [sys.executable, "-m", "orchestration.lake_freshness"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "lake table derivatives: no data yet, filled by derivatives_job" in done.stdout
    assert "Finished running 3 sources" in done.stdout  # upload_events, image_metadata, storage_inventory
