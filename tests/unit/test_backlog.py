"""The real-time backlog's arithmetic: Kafka lag, and when a failed batch runs again."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from imagelake.realtime.kafka import consumer_lag, dump_cursor, parse_cursor
from orchestration.backlog import REALTIME_BATCH_JOB, RERUN_TAG, Backlog, rerun_request
from orchestration.retries import BATCH_RERUN_MAX_DELAY, batch_rerun_delay


def test_lag_is_end_offsets_past_the_cursor_and_a_new_partition_counts_from_its_start():
    marks = {0: (0, 10), 1: (5, 8), 2: (3, 3)}
    assert consumer_lag({0: 10, 1: 8, 2: 3}, marks) == 0
    assert consumer_lag({0: 7}, marks) == 3 + 3  # partition 1 unknown: from its first offset
    assert consumer_lag(parse_cursor(dump_cursor({0: 2, 1: 6, 2: 3})), marks) == 8 + 2


def test_reruns_back_off_and_the_backoff_is_capped():
    delays = [batch_rerun_delay(n) for n in range(1, 10)]
    assert delays[0] == timedelta(minutes=5) and delays[1] == timedelta(minutes=10)
    assert delays == sorted(delays) and delays[-1] == BATCH_RERUN_MAX_DELAY


def test_the_backlog_says_what_holds_events():
    assert Backlog().empty and Backlog().describe() == "nothing"
    held = Backlog(failed=["t-0-0-9"], waiting=["t-1-0-9"], lag=None)
    assert not held.empty
    said = held.describe()
    assert "t-0-0-9" in said and "queued or running" in said and "unknown" in said
    assert not Backlog(lag=4).empty and "4 event(s)" in Backlog(lag=4).describe()


def _failed_record(age: timedelta, tags: dict[str, str] | None = None) -> dg.RunRecord:
    run = dg.DagsterRun(job_name=REALTIME_BATCH_JOB, status=dg.DagsterRunStatus.FAILURE, tags=tags or {})
    now = datetime.now(UTC)
    return dg.RunRecord(storage_id=1, dagster_run=run, create_timestamp=now - age, update_timestamp=now - age)


def test_a_failed_batch_runs_again_after_its_backoff_or_at_once_when_it_failed_in_dagster():
    now = datetime.now(UTC)
    recent = _failed_record(timedelta(seconds=30))
    assert rerun_request("t-0-0-9", recent, now) is None  # our code failed: 5 minutes first
    at_once = rerun_request("t-0-0-9", recent, now, failed_in_dagster=True)
    assert at_once is not None and at_once.partition_key == "t-0-0-9" and at_once.tags[RERUN_TAG] == "1"
    # once only: a re-run that fails again waits its backoff whatever the cause
    rerun_failed = _failed_record(timedelta(seconds=30), {RERUN_TAG: "1"})
    assert rerun_request("t-0-0-9", rerun_failed, now, failed_in_dagster=True) is None
    # while Dagster's own run retry is due, neither
    retrying = _failed_record(timedelta(hours=1), {"dagster/will_retry": "true"})
    assert rerun_request("t-0-0-9", retrying, now, failed_in_dagster=True) is None
    assert rerun_request("t-0-0-9", _failed_record(timedelta(minutes=6)), now) is not None
