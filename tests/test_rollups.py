"""Rollups stay equal to the raw events: fresh build, increments, late events, timezones."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import select, update

from tests.conftest import NOW, demo_frame
from tests.oracle import ranking
from tokenusage import demo, ingest, queries, ranges, rollups
from tokenusage.periods import DayRange
from tokenusage.schema import daily_user_spend, usage_events

TZ = "Europe/Berlin"


def test_fresh_incremental_late_and_reimport(engine, small_demo):
    rows = list(small_demo.event_rows())
    ingest.upsert_users(engine, small_demo.users)
    ingest.insert_events(engine, rows[:2500])
    assert rollups.refresh(engine, TZ).mode == "rebuild"
    assert rollups.verify(engine, TZ).ok

    ingest.insert_events(engine, rows[2500:])
    result = rollups.refresh(engine, TZ)
    assert (result.mode, result.events) == ("incremental", len(rows) - 2500)
    report = rollups.verify(engine, TZ)
    assert report.ok, report.differences
    assert report.checked_events == len(rows)

    late = [dict(r, request_id=f"late-{i}", occurred_at=r["occurred_at"] - timedelta(days=40))
            for i, r in enumerate(rows[:300])]
    ingest.insert_events(engine, late)
    assert rollups.pending_events(engine) == 300
    assert rollups.refresh(engine, TZ).events == 300
    assert rollups.verify(engine, TZ).ok

    again = ingest.insert_events(engine, rows)
    assert (again.inserted, again.duplicates) == (0, len(rows))
    assert rollups.refresh(engine, TZ).mode == "up to date"
    assert rollups.verify(engine, TZ).ok and rollups.is_current(engine, TZ)


def test_timezone_change_rebuilds(engine, small_demo):
    demo.load(engine, TZ, small_demo)
    assert not rollups.verify(engine, "Europe/Moscow").ok
    assert not rollups.is_current(engine, "Europe/Moscow")
    assert rollups.refresh(engine, "Europe/Moscow").mode == "rebuild"
    assert rollups.verify(engine, "Europe/Moscow").ok
    expected = ranking(demo_frame(small_demo), "Europe/Moscow", NOW.date() - timedelta(days=6),
                       NOW.date())
    with queries.snapshot(engine) as connection:
        got = list(queries.iter_ranking(
            connection, DayRange(NOW.date() - timedelta(days=6), NOW.date())))
    assert [(r.user_id, r.spend_nanos) for r in got] == list(
        zip(expected["user_id"], expected["spend_nanos"], strict=True))


def test_verify_reports_a_tampered_rollup(sqlite_engine, small_demo):
    demo.load(sqlite_engine, TZ, small_demo)
    with sqlite_engine.begin() as connection:
        victim = connection.execute(daily_user_spend.select().limit(1)).mappings().first()
        connection.execute(
            update(daily_user_spend)
            .where(daily_user_spend.c.day == victim["day"],
                   daily_user_spend.c.user_id == victim["user_id"])
            .values(cost_nanos=victim["cost_nanos"] + 1)
        )
    report = rollups.verify(sqlite_engine, TZ)
    assert not report.ok
    assert any(victim["user_id"] in line and line.startswith("daily") for line in
               report.differences)
    rollups.refresh(sqlite_engine, TZ, rebuild=True)
    assert rollups.verify(sqlite_engine, TZ).ok


@pytest.mark.parametrize("stored", [False, True], ids=["computed", "stored"])
def test_unpriced_calls_are_counted(sqlite_engine, stored):
    when = datetime(2026, 11, 2, 12)

    def call(request_id, user_id, cost):
        return {"request_id": request_id, "user_id": user_id, "occurred_at": when,
                "provider": "openai", "model": "gpt-4o" if cost else "mystery",
                "input_tokens": 5, "output_tokens": 5, "cached_input_tokens": 0,
                "cost_nanos": cost, "cost_source": "source" if cost else "unpriced"}

    ingest.insert_events(sqlite_engine, [call("a", "u1", None), call("b", "u1", 70),
                                         call("c", "u2", None), call("d", "u2", None)])
    rollups.refresh(sqlite_engine, "UTC")
    for days in (DayRange(None, None), DayRange(when.date(), when.date())):
        if stored:
            ranges.build(sqlite_engine, days)
        with queries.snapshot(sqlite_engine) as connection:
            totals = queries.period_totals(connection, days)
            page = queries.ranking_page(connection, days)
        # u2 spent nothing (every call unpriced): not ranked, but its calls are counted
        assert (totals.spend_nanos, totals.users, totals.events, totals.unpriced) == (70, 1, 4, 3)
        assert [r.user_id for r in page.rows] == ["u1"] and page.totals == totals
    assert rollups.verify(sqlite_engine, "UTC").ok


def test_refresh_drops_exactly_the_stored_ranges_it_changes(engine, small_demo):
    rows = list(small_demo.event_rows())
    ingest.upsert_users(engine, small_demo.users)
    ingest.insert_events(engine, rows[:3000])
    rollups.refresh(engine, TZ)
    october = DayRange(date(2026, 10, 1), date(2026, 10, 31))
    november = DayRange(date(2026, 11, 1), date(2026, 11, 30))
    everything = DayRange(None, None)
    for days in (october, november, everything):
        assert ranges.build(engine, days)
    ingest.insert_events(engine, [r for r in rows[3000:]
                                  if r["occurred_at"] >= datetime(2026, 11, 2)])
    rollups.refresh(engine, TZ)
    with queries.snapshot(engine) as connection:
        assert ranges.stored(connection, october) is not None
        assert ranges.stored(connection, november) is None
        assert ranges.stored(connection, everything) is None
    added = [r for r in rows[3000:] if r["occurred_at"] >= datetime(2026, 11, 2)]
    frame = demo_frame(small_demo)
    ids = {r["request_id"] for r in rows[:3000]} | {r["request_id"] for r in added}
    index = [f"demo-{small_demo.seed}-{i:09d}" in ids for i in range(len(frame))]
    expected = ranking(frame[index], TZ, november.start, november.end)
    ranges.build(engine, november)
    with queries.snapshot(engine) as connection:
        got = list(queries.iter_ranking(connection, november))
        assert ranges.stored(connection, november) is not None
    assert [(r.user_id, r.spend_nanos) for r in got] == list(
        zip(expected["user_id"], expected["spend_nanos"], strict=True))
    assert rollups.verify(engine, TZ).ok


def test_events_years_apart(engine):
    def call(request_id, when, cost):
        return {"request_id": request_id, "user_id": "u1", "occurred_at": when,
                "provider": "openai", "model": "gpt-4o", "input_tokens": 1, "output_tokens": 1,
                "cached_input_tokens": 0, "cost_nanos": cost, "cost_source": "source"}

    ingest.insert_events(engine, [call("a", datetime(2021, 1, 1, 0, 30), 5),
                                  call("b", datetime(2026, 11, 2, 23, 59, 59, 999999), 7)])
    rollups.refresh(engine, TZ)
    ingest.insert_events(engine, [call("c", datetime(2018, 6, 30, 22, 30), 11)])
    assert rollups.refresh(engine, TZ).events == 1
    assert rollups.verify(engine, TZ).ok
    with queries.snapshot(engine) as connection:
        series = queries.daily_series(connection, DayRange(None, None))
        november = queries.period_totals(connection, DayRange(date(2026, 11, 3),
                                                              date(2026, 11, 3)))
    assert series[0].day == date(2018, 7, 1) and series[0].spend_nanos == 11
    assert sum(p.spend_nanos for p in series) == 23
    assert november.spend_nanos == 7  # 23:59:59.999999 UTC is the next day in Berlin
    with engine.connect() as connection:
        stored_at = connection.execute(
            select(usage_events.c.occurred_at).where(usage_events.c.request_id == "b")).scalar()
    assert stored_at == datetime(2026, 11, 2, 23, 59, 59, 999999)  # microseconds everywhere


def test_warm_builds_the_preset_periods_once(sqlite_engine, small_demo):
    demo.load(sqlite_engine, TZ, small_demo)
    assert ranges.warm(sqlite_engine, TZ) == 5  # today, 30 days and their previous; all time
    assert ranges.warm(sqlite_engine, TZ) == 0
