"""Which days a warehouse refresh rebuilds.

The marts are incremental by day: a refresh recomputes a window of days from
the lake. New data names its days in its keys (``dt=YYYY-MM-DD`` is the upload
date), so a batch that carries a late event widens the window back to that
event's day. These helpers are pure; the Dagster sensor, schedule and dbt
asset wrap them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from imagelake.lake.layout import LayoutError, parse_dt

#: The environment variables the dbt project reads the window from (macros/windows.sql).
MIN_DATE_ENV = "IMAGELAKE_MIN_DATE"
MAX_DATE_ENV = "IMAGELAKE_MAX_DATE"


@dataclass(frozen=True, order=True)
class DayWindow:
    """An inclusive range of days."""

    first: date
    last: date

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ValueError(f"empty day window: {self.first} > {self.last}")

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}..{self.last}"

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]

    def dbt_env(self) -> dict[str, str]:
        """What the dbt project needs to rebuild exactly these days."""
        return {MIN_DATE_ENV: self.first.isoformat(), MAX_DATE_ENV: self.last.isoformat()}

    @classmethod
    def from_time_window(cls, start: datetime, end: datetime) -> DayWindow:
        """A Dagster partition time window (end exclusive) as the days it covers."""
        return cls(start.date(), (end - timedelta(microseconds=1)).date())


def lookback(today: date, lookback_days: int) -> DayWindow:
    """Today and the ``lookback_days`` days before it: what a routine refresh rebuilds."""
    if lookback_days < 0:
        raise ValueError(f"lookback_days must be >= 0, got {lookback_days}")
    return DayWindow(today - timedelta(days=lookback_days), today)


def days_of_keys(keys: Iterable[str]) -> set[date]:
    """The ``dt=`` days named by lake keys; keys without one (derivatives) name none."""
    days = set()
    for key in keys:
        try:
            days.add(parse_dt(key))
        except LayoutError:
            continue
    return days


def days_of_materialization(metadata: Mapping[str, object], partition: str | None) -> set[date] | None:
    """The days one upstream materialization touched, or None if it does not say.

    Its ``files`` metadata (the lake table files it wrote) names them by their ``dt=``
    folders; an empty list says it wrote nothing (a dry run, a day with nothing to do),
    so no day needs a refresh. Without file days, a partition that is a day stands in.
    """
    files = metadata.get("files")
    if isinstance(files, list | tuple):
        days = days_of_keys(str(f) for f in files)
        if days or not files:
            return days
    if partition:
        try:
            return {date.fromisoformat(partition)}
        except ValueError:
            pass
    return None


def refresh_window(days: Iterable[date], today: date, first_day: date) -> DayWindow | None:
    """The window covering ``days``, within [first_day, today]; None if no day is left.

    One window rather than one run per day: rebuilding a day in between is
    harmless (a day's rows are replaced whole) and one dbt invocation is far
    cheaper than several.
    """
    kept = [min(d, today) for d in days if d >= first_day]
    if not kept:
        return None
    return DayWindow(min(kept), max(kept))
