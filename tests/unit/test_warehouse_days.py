"""Which days a warehouse refresh rebuilds (imagelake/warehouse/days.py)."""

import threading
import time
from datetime import UTC, date, datetime

import duckdb
import pytest

from imagelake.warehouse.days import (
    DayWindow,
    days_of_keys,
    days_of_materialization,
    lookback,
    refresh_window,
)
from imagelake.warehouse.locks import LockTimeout, exclusive, in_use, is_locked, wait_until_unused

D = date.fromisoformat


def test_a_window_lists_its_days_and_tells_dbt_its_bounds():
    window = DayWindow(D("2026-02-27"), D("2026-03-01"))
    assert window.days == [D("2026-02-27"), D("2026-02-28"), D("2026-03-01")]
    assert window.dbt_env() == {"IMAGELAKE_MIN_DATE": "2026-02-27", "IMAGELAKE_MAX_DATE": "2026-03-01"}
    assert (
        str(window) == "2026-02-27..2026-03-01"
        and str(DayWindow(D("2026-03-01"), D("2026-03-01"))) == "2026-03-01"
    )
    with pytest.raises(ValueError, match="empty day window"):
        DayWindow(D("2026-03-02"), D("2026-03-01"))


def test_a_partition_time_window_covers_its_days_end_exclusive():
    start, end = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 4, tzinfo=UTC)
    assert DayWindow.from_time_window(start, end) == DayWindow(D("2026-03-01"), D("2026-03-03"))


def test_lookback_is_today_and_the_days_before():
    assert lookback(D("2026-03-10"), 3) == DayWindow(D("2026-03-07"), D("2026-03-10"))
    assert lookback(D("2026-03-10"), 0).days == [D("2026-03-10")]
    with pytest.raises(ValueError):
        lookback(D("2026-03-10"), -1)


def test_days_come_from_the_dt_folders_of_the_files_a_run_wrote():
    files = [
        "raw/events/dt=2026-03-07/image-uploads-0-10-20.parquet",  # a late event's day
        "raw/events/dt=2026-03-10/image-uploads-0-10-20.parquet",
        "curated/image_metadata/dt=2026-03-10/image-uploads-0-10-20.parquet",
        "derivatives/256/01J0000000000000000000000.webp",  # no day in the key
    ]
    assert days_of_keys(files) == {D("2026-03-07"), D("2026-03-10")}
    assert days_of_materialization({"files": files, "events": 3}, "image-uploads-0-10-20") == {
        D("2026-03-07"),
        D("2026-03-10"),
    }


def test_a_daily_partition_stands_in_for_files_without_days_and_a_writer_saying_nothing_names_none():
    assert days_of_materialization({}, "2026-03-09") == {D("2026-03-09")}
    assert days_of_materialization({"files": ["derivatives/256/x.webp"]}, "2026-03-09") == {D("2026-03-09")}
    assert days_of_materialization({}, "image-uploads-2-0-0") is None
    assert days_of_materialization({"files": "not a list"}, None) is None


def test_a_writer_that_wrote_no_file_touched_no_day_whatever_its_partition():
    """A GC that left an empty lake, a derivatives run with no image to do, a batch of dead letters only."""
    assert days_of_materialization({"files": []}, "2026-03-09") == set()
    assert days_of_materialization({"files": []}, "image-uploads-2-0-0") == set()
    assert days_of_materialization({"files": [], "dry_run": True}, None) == set()


def test_refresh_window_spans_the_days_within_the_warehouse_and_today():
    first, today = D("2026-01-01"), D("2026-03-10")
    assert refresh_window({D("2026-03-07"), D("2026-03-10")}, today, first) == DayWindow(
        D("2026-03-07"), today
    )
    # a clock a little ahead of ours names tomorrow: it is rebuilt as today
    assert refresh_window({D("2026-03-11")}, today, first) == DayWindow(today, today)
    assert refresh_window({D("2025-12-30")}, today, first) is None
    assert refresh_window(set(), today, first) is None


def test_the_build_lock_makes_a_second_holder_wait_and_says_so(tmp_path):
    lock = tmp_path / "warehouse.duckdb.lock"
    order: list[str] = []
    told: list[str] = []
    holding = threading.Event()

    def first() -> None:
        with exclusive(lock, 10):
            holding.set()
            order.append("first in")
            time.sleep(0.5)
            order.append("first out")

    thread = threading.Thread(target=first)
    thread.start()
    holding.wait(5)
    assert is_locked(lock)
    with exclusive(lock, 10, on_wait=lambda: told.append("waiting"), poll_s=0.05):
        order.append("second in")
    thread.join()
    assert order == ["first in", "first out", "second in"] and told == ["waiting"]
    assert not is_locked(lock)


def test_the_build_lock_gives_up_with_a_clear_error(tmp_path):
    lock = tmp_path / "warehouse.duckdb.lock"
    with (
        exclusive(lock, 1),
        pytest.raises(LockTimeout, match="locked by another build"),
        exclusive(lock, 0.2, poll_s=0.05),
    ):
        pass


def test_a_database_open_in_another_session_is_in_use_until_it_closes(tmp_path):
    """DuckDB's one writer is kept out by any session that has the file open, even read-only."""
    path = tmp_path / "warehouse.duckdb"
    assert not in_use(path)  # no file yet: nothing to wait for
    duckdb.connect(str(path)).close()
    assert not in_use(path)
    reader = duckdb.connect(str(path), read_only=True)
    assert in_use(path)
    with pytest.raises(LockTimeout, match=r"open in another process.*lsof"):
        wait_until_unused(path, 0.3, poll_s=0.1)
    threading.Timer(0.5, reader.close).start()
    told = []
    wait_until_unused(path, 30, on_wait=lambda: told.append("waiting"), poll_s=0.1)
    assert told == ["waiting"] and not in_use(path)
    duckdb.connect(str(path)).close()  # the writer gets in


def test_a_database_this_user_cannot_open_is_an_error_not_a_wait(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    path.mkdir()  # not a file: the probe cannot open it for writing
    with pytest.raises(
        OSError, match=r"could not check whether another process has .* open: IsADirectoryError"
    ):
        in_use(path)
