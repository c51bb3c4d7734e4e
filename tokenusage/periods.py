"""Report periods as calendar days in the business timezone, and their UTC bounds."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


class Period(enum.StrEnum):
    ALL = "all"
    TODAY = "today"
    LAST_30_DAYS = "30d"
    CUSTOM = "custom"

    @property
    def label(self) -> str:
        return PERIOD_LABELS[self]


PERIOD_LABELS = {
    Period.ALL: "All time",
    Period.TODAY: "Today",
    Period.LAST_30_DAYS: "Last 30 days",
    Period.CUSTOM: "Custom",
}

LAST_N_DAYS = 30


@dataclass(frozen=True)
class DayRange:
    """An inclusive range of calendar days; `None` ends mean unbounded (all time)."""

    start: date | None
    end: date | None

    @property
    def is_bounded(self) -> bool:
        return self.start is not None and self.end is not None

    @property
    def days(self) -> int | None:
        if not self.is_bounded:
            return None
        return (self.end - self.start).days + 1

    def previous(self) -> DayRange | None:
        """The range of equal length just before this one (None for all time)."""
        if not self.is_bounded:
            return None
        length = timedelta(days=self.days)
        return DayRange(self.start - length, self.end - length)

    def describe(self) -> str:
        if not self.is_bounded:
            return "all time"
        if self.start == self.end:
            return self.start.strftime("%b %-d, %Y")
        return f"{self.start:%b %-d, %Y} – {self.end:%b %-d, %Y}"


def today_in(tz: ZoneInfo, now: datetime | None = None) -> date:
    now = now or datetime.now(UTC)
    return now.astimezone(tz).date()


def resolve(
    period: Period,
    tz: ZoneInfo,
    custom: tuple[date, date] | None = None,
    now: datetime | None = None,
) -> DayRange:
    """The days a period covers, as of `now`, in timezone `tz`."""
    today = today_in(tz, now)
    if period is Period.ALL:
        return DayRange(None, None)
    if period is Period.TODAY:
        return DayRange(today, today)
    if period is Period.LAST_30_DAYS:
        return DayRange(today - timedelta(days=LAST_N_DAYS - 1), today)
    if custom is None or len(custom) != 2:
        raise ValueError("a custom period needs a start and an end date")
    start, end = custom
    if start > end:
        start, end = end, start
    return DayRange(start, end)


def day_start_utc(day: date, tz: ZoneInfo) -> datetime:
    """The UTC instant (naive) at which local calendar day `day` begins in `tz`."""
    local = datetime.combine(day, time(0), tzinfo=tz)
    return local.astimezone(UTC).replace(tzinfo=None)


def utc_bounds(days: DayRange, tz: ZoneInfo) -> tuple[datetime | None, datetime | None]:
    """Half-open UTC bounds [start, end) of a day range, as naive UTC datetimes."""
    start = day_start_utc(days.start, tz) if days.start else None
    end = day_start_utc(days.end + timedelta(days=1), tz) if days.end else None
    return start, end


def local_day(moment_utc: datetime, tz: ZoneInfo) -> date:
    """The business-timezone calendar day of a UTC instant (naive means UTC)."""
    if moment_utc.tzinfo is None:
        moment_utc = moment_utc.replace(tzinfo=UTC)
    return moment_utc.astimezone(tz).date()
