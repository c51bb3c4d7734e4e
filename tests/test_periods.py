"""Period bounds as calendar days in the business timezone, DST included."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from tokenusage.periods import DayRange, Period, day_start_utc, local_day, resolve, utc_bounds

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
MOSCOW = ZoneInfo("Europe/Moscow")


def test_today_follows_the_business_timezone():
    late_evening_utc = datetime(2026, 3, 10, 22, 30, tzinfo=UTC)
    assert resolve(Period.TODAY, MOSCOW, now=late_evening_utc) == DayRange(
        date(2026, 3, 11), date(2026, 3, 11))
    assert resolve(Period.TODAY, NEW_YORK, now=late_evening_utc) == DayRange(
        date(2026, 3, 10), date(2026, 3, 10))


def test_last_30_days_includes_today():
    days = resolve(Period.LAST_30_DAYS, BERLIN, now=datetime(2026, 11, 20, 12, tzinfo=UTC))
    assert days == DayRange(date(2026, 10, 22), date(2026, 11, 20)) and days.days == 30
    assert days.previous() == DayRange(date(2026, 9, 22), date(2026, 10, 21))


def test_all_time_is_unbounded_and_custom_is_ordered():
    assert resolve(Period.ALL, BERLIN) == DayRange(None, None)
    assert DayRange(None, None).previous() is None
    swapped = resolve(Period.CUSTOM, BERLIN, (date(2026, 5, 9), date(2026, 5, 1)))
    assert swapped == DayRange(date(2026, 5, 1), date(2026, 5, 9))
    with pytest.raises(ValueError):
        resolve(Period.CUSTOM, BERLIN, None)
    with pytest.raises(ValueError):
        resolve(Period.CUSTOM, BERLIN, (date(2026, 5, 1),))


@pytest.mark.parametrize(
    ("tz", "day", "hours"),
    [
        (BERLIN, date(2026, 3, 29), 23),  # spring forward
        (BERLIN, date(2026, 10, 25), 25),  # fall back
        (NEW_YORK, date(2026, 3, 8), 23),
        (NEW_YORK, date(2026, 11, 1), 25),
        (MOSCOW, date(2026, 3, 29), 24),  # UTC+3 all year
        (BERLIN, date(2026, 6, 1), 24),
    ],
)
def test_a_day_is_as_long_as_the_clock_says(tz, day, hours):
    start, end = utc_bounds(DayRange(day, day), tz)
    assert end - start == timedelta(hours=hours)
    assert local_day(start, tz) == day
    assert local_day(end - timedelta(microseconds=1), tz) == day
    assert local_day(end, tz) == day + timedelta(days=1)


def test_moscow_day_starts_at_21_utc():
    assert day_start_utc(date(2026, 7, 1), MOSCOW) == datetime(2026, 6, 30, 21, 0)


@pytest.mark.parametrize("tz", [BERLIN, MOSCOW, NEW_YORK])
def test_day_totals_add_up_to_the_range_total(tz):
    """Random events: each day's total (half-open UTC bounds) equals pandas' local-day sum."""
    rng = pd.Series(range(5000))
    moments = pd.Timestamp("2026-03-20", tz="UTC") + pd.to_timedelta(
        (rng * 7919 % (40 * 86400)).astype("int64"), unit="s")
    costs = (rng * 104729 % 1000).astype("int64")
    frame = pd.DataFrame({"at": moments, "cost": costs})
    by_local_day = frame.groupby(frame["at"].dt.tz_convert(tz).dt.date)["cost"].sum()
    first, last = date(2026, 3, 22), date(2026, 4, 25)
    total = 0
    day = first
    naive = frame["at"].dt.tz_localize(None)
    while day <= last:
        start, end = utc_bounds(DayRange(day, day), tz)
        in_day = int(frame.loc[(naive >= start) & (naive < end), "cost"].sum())
        assert in_day == int(by_local_day.get(day, 0))
        total += in_day
        day += timedelta(days=1)
    start, end = utc_bounds(DayRange(first, last), tz)
    assert total == int(frame.loc[(naive >= start) & (naive < end), "cost"].sum())
