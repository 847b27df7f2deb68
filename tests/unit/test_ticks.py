"""Sensors tick at their configured interval on Dagster's 5 s daemon loop, not a loop later."""

import random

import pytest

from imagelake.settings import get_settings
from orchestration.sensors import kafka_upload_sensor
from orchestration.ticks import minimum_interval
from orchestration.warehouse_schedules import warehouse_refresh_sensor

DAEMON_LOOP_S = 5.0  # dagster._daemon.sensor.MIN_INTERVAL_LOOP_TIME


def tick_gaps(min_interval: float, loops: int = 400, seed: int = 3) -> list[float]:
    """The daemon's rule, replayed: each loop evaluates the sensor if its last tick started
    ``min_interval`` ago; the tick starts some milliseconds into the loop, not always the same."""
    rng = random.Random(seed)
    last, gaps = None, []
    for n in range(loops):
        started = n * DAEMON_LOOP_S + rng.uniform(0.0, 0.08)
        if last is None or started - last >= min_interval:
            if last is not None:
                gaps.append(round(started - last))
            last = started
    return gaps


def test_the_interval_itself_as_minimum_loses_whole_loops_to_jitter():
    gaps = tick_gaps(5)
    assert 10 in gaps  # a tick that started late makes the next loop skip the sensor


@pytest.mark.parametrize("every", [5, 10, 30])
def test_minimum_interval_ticks_every_interval(every):
    assert set(tick_gaps(minimum_interval(every))) == {every}


def test_minimum_interval_refuses_a_zero_interval():
    with pytest.raises(ValueError, match="at least 1 s"):
        minimum_interval(0)


def test_both_sensors_use_it_and_say_why_the_ui_shows_a_second_less():
    settings = get_settings()
    for sensor, every in (
        (kafka_upload_sensor, settings.sensor_interval_s),
        (warehouse_refresh_sensor, settings.warehouse_refresh_interval_s),
    ):
        assert sensor.minimum_interval_seconds == minimum_interval(every)
        assert f"Ticks every {every} s; the UI shows {every - 1} s" in sensor.description
