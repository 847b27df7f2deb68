"""The real-time backlog's arithmetic: Kafka lag, and when a failed batch runs again."""

from datetime import timedelta

from imagelake.realtime.kafka import consumer_lag, dump_cursor, parse_cursor
from orchestration.backlog import Backlog
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
