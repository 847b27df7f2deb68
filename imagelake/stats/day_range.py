"""The date range of a statistics request, checked: each refusal names what is wrong with it.

Days are UTC dates, like every figure of the marts. Both ends are inclusive; with neither given a
request covers the last 7 days, with one given the other defaults to it (``to`` to today).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

#: Days a request covers when it names neither end.
DEFAULT_DAYS = 7


class RangeRefused(ValueError):
    """The request's range cannot be answered; the message says why, for a 400."""


@dataclass(frozen=True)
class DayRange:
    first: date
    last: date


def parse_day(name: str, raw: str) -> date:
    try:
        if len(raw) != 10:
            raise ValueError
        return date.fromisoformat(raw)
    except ValueError:
        shown = raw if len(raw) <= 40 else raw[:40] + "…"
        raise RangeRefused(f"{name} must be a date as YYYY-MM-DD, got {shown!r}") from None


def day_range(
    first: str | None, last: str | None, *, today: date, max_days: int, history_days: int
) -> DayRange:
    """The range ``from``..``to`` of a request, or :class:`RangeRefused`: malformed, inverted,
    longer than ``max_days``, ending after ``today``, or starting before the ``history_days`` the
    statistics keep."""
    end = parse_day("to", last) if last is not None else today
    start = parse_day("from", first) if first is not None else end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise RangeRefused(f"from ({start}) is after to ({end}): the range is inverted")
    if end > today:
        raise RangeRefused(f"to ({end}) is in the future: the latest day is today, {today} (UTC)")
    if (end - start).days + 1 > max_days:
        raise RangeRefused(
            f"the range {start}..{end} covers {(end - start).days + 1} days; at most {max_days} per request"
        )
    oldest = today - timedelta(days=history_days)
    if start < oldest:
        raise RangeRefused(
            f"from ({start}) is before {oldest}: the statistics endpoints keep {history_days} days "
            "(older days are in the warehouse's marts)"
        )
    return DayRange(start, end)
