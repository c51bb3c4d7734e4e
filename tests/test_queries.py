"""The ranking and its totals on every backend, against pandas over the same events."""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import NOW, demo_frame
from tests.oracle import daily_totals, ranking
from tokenusage import demo, ingest, queries, ranges, rollups
from tokenusage.periods import DayRange, Period, resolve

TZ = "Europe/Berlin"


@pytest.fixture
def loaded(engine, small_demo):
    demo.load(engine, TZ, small_demo)
    return engine


def full_ranking(engine, days, search=None):
    with queries.snapshot(engine) as connection:
        return list(queries.iter_ranking(connection, days, search))


PERIOD_CASES = [
    (Period.ALL, None),
    (Period.TODAY, None),
    (Period.LAST_30_DAYS, None),
    (Period.CUSTOM, (date(2026, 10, 20), date(2026, 10, 31))),  # spans the DST change
    (Period.CUSTOM, (date(2026, 9, 1), date(2026, 11, 15))),  # whole months + edges
    (Period.CUSTOM, (date(2026, 10, 1), date(2026, 10, 31))),  # exactly one month
]


@pytest.mark.parametrize("stored", [False, True], ids=["computed", "stored"])
@pytest.mark.parametrize(("period", "custom"), PERIOD_CASES)
def test_ranking_matches_pandas_for_every_period(loaded, small_demo, period, custom, stored):
    days = resolve(period, ZoneInfo(TZ), custom, now=NOW)
    if stored:
        assert ranges.build(loaded, days) is True
        assert ranges.build(loaded, days) is False  # built once
    expected = ranking(demo_frame(small_demo), TZ, days.start, days.end)
    got = full_ranking(loaded, days)
    assert [(r.rank, r.user_id, r.spend_nanos) for r in got] == list(
        zip(expected["rank"], expected["user_id"], expected["spend_nanos"], strict=True)
    )
    assert len(got) > 0
    with queries.snapshot(loaded) as connection:
        totals = queries.period_totals(connection, days)
    assert totals.spend_nanos == int(expected["spend_nanos"].sum())
    assert totals.users == len(expected)
    with queries.snapshot(loaded) as connection:
        assert (ranges.stored(connection, days) is not None) == stored


def test_range_total_equals_sum_of_its_days(loaded, small_demo):
    days = DayRange(date(2026, 10, 1), date(2026, 11, 10))
    per_day = daily_totals(demo_frame(small_demo), TZ)
    with queries.snapshot(loaded) as connection:
        series = queries.daily_series(connection, days)
        total = queries.period_totals(connection, days).spend_nanos
    assert sum(p.spend_nanos for p in series) == total
    for point in series:
        assert point.spend_nanos == int(per_day.get(point.day, 0))
    assert len(series) == days.days


@pytest.mark.parametrize("stored", [False, True], ids=["computed", "stored"])
def test_page_boundaries(loaded, small_demo, stored):
    days = resolve(Period.ALL, ZoneInfo(TZ), now=NOW)
    if stored:
        ranges.build(loaded, days)
    everyone = full_ranking(loaded, days)
    size = 25
    with queries.snapshot(loaded) as connection:
        first = queries.ranking_page(connection, days, None, 1, size)
        middle = queries.ranking_page(connection, days, None, 2, size)
        last_number = -(-len(everyone) // size)
        last = queries.ranking_page(connection, days, None, last_number, size)
        beyond = queries.ranking_page(connection, days, None, last_number + 1, size)
    assert first.rows == everyone[:size] and (first.first_row, first.last_row) == (1, size)
    assert middle.rows == everyone[size:2 * size]
    assert last.rows == everyone[(last_number - 1) * size:]
    assert last.last_row == len(everyone) and first.pages == last_number
    assert beyond.rows == [] and beyond.matching == len(everyone)
    assert beyond.totals.spend_nanos == first.totals.spend_nanos
    overview = queries.ranking_overview(loaded, days, None, last_number + 5, size)
    assert overview.page.page == last_number and overview.page.rows == last.rows


def _user(uid, name, email=""):
    return {"user_id": uid, "name": name, "email": email, "plan": "pro", "signed_up_at": None}


def _event(n, uid, cost, when):
    return {"request_id": f"t-{n}", "user_id": uid, "occurred_at": when, "provider": "openai",
            "model": "gpt-4o", "input_tokens": 10, "output_tokens": 5,
            "cached_input_tokens": 0, "cost_nanos": cost, "cost_source": "source"}


@pytest.fixture
def people(engine):
    """Hand-made users for search and tie cases, one event each on 2026-11-02 (UTC)."""
    when = NOW.replace(tzinfo=None) - timedelta(days=18)
    rows = [
        _user("u01", "Анна Иванова", "anna@example.ru"),
        _user("u02", "АННА Петрова", "petrova@example.ru"),
        _user("u03", "Bob 100% Real", "bob@example.com"),
        _user("u04", "Carol_Smith", "carol@example.com"),
        _user("u05", "Carol Smith", "csmith@Example.COM"),
        _user("u06", "Straße Müller", "strasse@example.de"),
        _user("u07", "Tie A", "tie@example.com"),
        _user("u08", "Tie B", "tie@example.com"),
        _user("u09", "No Spend", "zero@example.com"),
    ]
    ingest.upsert_users(engine, rows)
    costs = {"u01": 900, "u02": 800, "u03": 700, "u04": 600, "u05": 500, "u06": 400,
             "u07": 300, "u08": 300, "u09": 0}
    ingest.insert_events(engine, [_event(i, u, c, when) for i, (u, c) in enumerate(costs.items())])
    rollups.refresh(engine, "UTC")
    return engine


ALL = DayRange(None, None)


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("анна", ["u01", "u02"]),  # Cyrillic, either case
        ("АнНа", ["u01", "u02"]),
        ("100%", ["u03"]),  # % is a plain character
        ("%", ["u03"]),
        ("_", ["u04"]),  # _ is a plain character
        ("carol_", ["u04"]),
        ("example.com", ["u03", "u04", "u05", "u07", "u08"]),  # email, case-insensitive
        ("EXAMPLE.COM", ["u03", "u04", "u05", "u07", "u08"]),
        ("u0", ["u01", "u02", "u03", "u04", "u05", "u06", "u07", "u08"]),  # user id
        ("STRASSE", ["u06"]),  # casefold: ß matches ss
        ("nobody", []),
        ("  anna@  ", ["u01"]),
    ],
)
def test_search(people, search, expected):
    got = full_ranking(people, ALL, search)
    assert [r.user_id for r in got] == expected


@pytest.mark.parametrize("stored", [False, True], ids=["computed", "stored"])
def test_rank_is_kept_under_search_and_zero_spend_is_not_ranked(people, stored):
    if stored:
        ranges.build(people, ALL)
    everyone = full_ranking(people, ALL)
    assert [r.user_id for r in everyone] == [f"u0{i}" for i in range(1, 9)]
    assert [r.rank for r in full_ranking(people, ALL, "carol")] == [4, 5]
    with queries.snapshot(people) as connection:
        page = queries.ranking_page(connection, ALL, "tie", 1, 10)
    assert [(r.rank, r.user_id) for r in page.rows] == [(7, "u07"), (8, "u08")]
    assert page.matching == 2 and page.totals.users == 8


def test_ties_are_broken_by_user_id(people):
    ties = [r for r in full_ranking(people, ALL) if r.spend_nanos == 300]
    assert [r.user_id for r in ties] == ["u07", "u08"]
