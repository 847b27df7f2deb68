"""Sensor intervals as Dagster's sensor daemon honours them."""

#: How much earlier than its interval a sensor counts as due again (see ``minimum_interval``).
TICK_JITTER_ALLOWANCE_S = 1


def minimum_interval(every_s: int) -> int:
    """The ``minimum_interval_seconds`` that makes a sensor tick every ``every_s`` seconds.

    The daemon evaluates sensors on a fixed 5 s loop and runs one whose last
    tick *started* at least ``minimum_interval_seconds`` ago. Where a tick
    starts within its loop moves by some milliseconds from loop to loop, so
    with the minimum equal to the interval a tick that started a little late
    makes the next loop find the sensor not yet due, and it waits a whole
    extra loop (how often that happened: docs/benchmarks.md, "bench-realtime").
    A second's allowance absorbs that jitter.
    """
    if every_s < 1:
        raise ValueError(f"a sensor interval must be at least 1 s, got {every_s}")
    return max(1, every_s - TICK_JITTER_ALLOWANCE_S)


def interval_note(every_s: int) -> str:
    """What a sensor's description says of its interval: the UI shows the minimum, a second
    less than the interval people configure and the docs give."""
    return (
        f"Ticks every {every_s} s; the UI shows {minimum_interval(every_s)} s, a second's allowance "
        "for the daemon's loop jitter (orchestration/ticks.py)."
    )
