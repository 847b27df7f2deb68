"""The date range of a statistics request: each bad range is refused with what is wrong with it."""

from datetime import date

import pytest

from imagelake.stats.day_range import DayRange, RangeRefused, day_range

TODAY = date(2026, 12, 3)


def checked(first, last):
    return day_range(first, last, today=TODAY, max_days=366, history_days=400)


def test_defaults_are_the_last_seven_days_and_one_end_anchors_the_other():
    assert checked(None, None) == DayRange(date(2026, 11, 27), TODAY)
    assert checked(None, "2026-11-10") == DayRange(date(2026, 11, 4), date(2026, 11, 10))
    assert checked("2026-12-01", None) == DayRange(date(2026, 12, 1), TODAY)
    assert checked("2026-12-03", "2026-12-03") == DayRange(TODAY, TODAY)


@pytest.mark.parametrize(
    ("first", "last", "says"),
    [
        ("2026-12-02", "2026-12-01", "from (2026-12-02) is after to (2026-12-01): the range is inverted"),
        ("2025-11-01", "2026-12-02", "covers 397 days; at most 366 per request"),
        ("2026-12-01", "2026-12-04", "to (2026-12-04) is in the future"),
        ("2026-13-01", None, "from must be a date as YYYY-MM-DD, got '2026-13-01'"),
        (None, "yesterday", "to must be a date as YYYY-MM-DD, got 'yesterday'"),
        ("2026-1-5", None, "from must be a date as YYYY-MM-DD, got '2026-1-5'"),
        ("20261201", None, "from must be a date as YYYY-MM-DD"),
        (
            "2025-10-01",
            "2025-10-02",
            "from (2025-10-01) is before 2025-10-29: the statistics endpoints keep 400 days",
        ),
    ],
)
def test_a_bad_range_is_refused_naming_the_problem(first, last, says):
    with pytest.raises(RangeRefused) as refused:
        checked(first, last)
    assert says in str(refused.value)


def test_a_long_malformed_value_is_cut_in_the_message():
    with pytest.raises(RangeRefused) as refused:
        checked("x" * 5000, None)
    assert len(str(refused.value)) < 120
