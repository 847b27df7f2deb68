"""bench-load's processing throughput is taken over whole run cycles, so batches that come seconds
apart do not move it by a whole batch."""

import pytest

from bench.load_bench import BatchRun, pipeline_rate


def cycle(first_end: float, every_s: float, events: int, count: int) -> list[BatchRun]:
    """Runs ending every ``every_s`` seconds from ``first_end``, each of ``events`` images."""
    return [BatchRun(first_end + i * every_s - 6.0, events, 1.0, 5.0) for i in range(count)]


@pytest.mark.parametrize("window_start", [30.0, 34.0, 38.0, 41.0])
def test_runs_every_15_s_of_600_events_are_40_per_second_wherever_the_window_falls(window_start):
    runs = cycle(first_end=2.0, every_s=15.0, events=600, count=10)
    # Counting by time in a 60 s window would see three or four batches (30 or 40/s) by its start.
    assert pipeline_rate(runs, window_start, window_start + 60.0) == pytest.approx(40.0)


def test_a_pipeline_capped_below_the_offered_rate_is_measured_at_its_cap():
    runs = cycle(first_end=5.0, every_s=15.0, events=1000, count=8)
    assert pipeline_rate(runs, 30.0, 90.0) == pytest.approx(1000 / 15)


def test_runs_outside_the_window_and_the_first_end_in_it_are_not_counted():
    runs = [*cycle(first_end=10.0, every_s=10.0, events=100, count=3), BatchRun(100.0, 5000, 1.0, 5.0)]
    # ends at 10, 20, 30 and 106: the window [15, 60] holds 20 and 30 -> 100 images over 10 s
    assert pipeline_rate(runs, 15.0, 60.0) == pytest.approx(10.0)


def test_fewer_than_two_ends_in_the_window_gives_no_rate():
    runs = cycle(first_end=10.0, every_s=100.0, events=50, count=3)
    assert pipeline_rate(runs, 20.0, 105.0) is None
    assert pipeline_rate([], 0.0, 60.0) is None
