"""Read queries for the dashboard, on the rollup tables, in SQLAlchemy Core.

Every function takes an open connection so that a page's queries can share one
snapshot (`snapshot`) and see a refresh either entirely or not at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Select, func, literal, over, select
from sqlalchemy.sql import FromClause
from sqlalchemy.sql.elements import ColumnElement

from tokenusage.periods import DayRange
from tokenusage.ranges import build, day_sums, range_key, spend_by_user, stored
from tokenusage.schema import (
    SEARCH_SEPARATOR,
    annotations,
    daily_totals,
    daily_user_spend,
    range_rankings,
    rollup_state,
    usage_events,
    users,
)
from tokenusage.source import OWN, Source

PAGE_SIZES = (10, 25, 50, 100, 250, 500)
DEFAULT_PAGE_SIZE = 25
MAX_PAGE = 10_000_000


@contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """A read-only connection whose queries all see the same committed state."""
    options = {}
    if engine.dialect.name in ("postgresql", "mysql", "mariadb"):
        options["isolation_level"] = "REPEATABLE READ"
    with engine.connect().execution_options(**options) as connection:
        with connection.begin():
            yield connection


@dataclass(frozen=True)
class RankedUser:
    rank: int
    user_id: str
    name: str
    email: str
    plan: str
    spend_nanos: int
    events: int
    tokens: int


@dataclass(frozen=True)
class Totals:
    spend_nanos: int = 0
    users: int = 0
    events: int = 0
    tokens: int = 0
    unpriced: int = 0

    @property
    def average_nanos(self) -> int:
        return self.spend_nanos // self.users if self.users else 0


@dataclass(frozen=True)
class RankingPage:
    rows: list[RankedUser]
    matching: int
    page: int
    page_size: int
    totals: Totals

    @property
    def pages(self) -> int:
        return max(1, -(-self.matching // self.page_size))

    @property
    def first_row(self) -> int:
        return (self.page - 1) * self.page_size + 1 if self.rows else 0

    @property
    def last_row(self) -> int:
        return self.first_row + len(self.rows) - 1 if self.rows else 0


def _ranked_user(r) -> RankedUser:
    return RankedUser(int(r["rank"]), r["user_id"], r["name"] or r["user_id"], r["email"],
                      r["plan"], int(r["spend"]), int(r["events"]), int(r["tokens"]))


def search_condition(search: str | None, people: FromClause = users, mapped: bool = False
                     ) -> ColumnElement[bool] | None:
    """Case-insensitive substring match on name, email and id; % and _ are literal.

    Our own search keys are casefolded in Python; a mapped source's are lower-cased by its
    database, so the needle is lower-cased the same way there.
    """
    needle = (search or "").replace(SEARCH_SEPARATOR, " ").strip()
    needle = needle.lower() if mapped else needle.casefold()
    if not needle:
        return None
    return people.c.search_key.contains(needle, autoescape=True)


def _matching_users(search: str | None, source: Source) -> Select | None:
    """Ids of the users a search matches, or None for no search.

    Filtering the ranking by this list (rather than joining users to every ranked row)
    lets the database scan the users once and then look ranks up by id.
    """
    people = source.users
    condition = search_condition(search, people, source.mapped)
    return None if condition is None else select(people.c.user_id).where(condition)


def _computed_ranking(days: DayRange):
    spend = spend_by_user(days)
    order = (spend.c.spend.desc(), spend.c.user_id.asc())
    return select(
        func.row_number().over(order_by=order).label("rank"),
        spend.c.user_id,
        spend.c.spend,
        spend.c.events,
        spend.c.tokens,
    ).subquery("ranked")


def _stored_ranking(days: DayRange):
    r = range_rankings
    return select(
        r.c.rank, r.c.user_id, r.c.cost_nanos.label("spend"), r.c.events, r.c.tokens
    ).where(r.c.range_key == range_key(days)).subquery("ranked")


def _totals(summary: dict) -> Totals:
    return Totals(summary["cost_nanos"], summary["users"], summary["events"], summary["tokens"],
                  summary["unpriced"])


def period_totals(connection: Connection, days: DayRange) -> Totals:
    """Spend, spenders, calls, tokens and unpriced calls of a period (search ignored)."""
    summary = stored(connection, days)
    if summary is not None:
        return _totals(summary)
    return _computed_totals(connection, days)


def _computed_totals(connection: Connection, days: DayRange) -> Totals:
    sums = day_sums(connection, days)
    spend = spend_by_user(days)
    spenders = connection.execute(select(func.count()).select_from(spend)).scalar()
    return Totals(sums["cost_nanos"], int(spenders), sums["events"], sums["tokens"],
                  sums["unpriced"])


def _ranking(connection: Connection, days: DayRange) -> tuple[Any, Totals]:
    """The period's ranking as a subquery (stored when built, else computed) and its totals."""
    summary = stored(connection, days)
    if summary is not None:
        return _stored_ranking(days), _totals(summary)
    return _computed_ranking(days), _computed_totals(connection, days)


def _with_users(ranked, people: FromClause) -> Select:
    return select(
        ranked,
        func.coalesce(people.c.name, literal("")).label("name"),
        func.coalesce(people.c.email, literal("")).label("email"),
        func.coalesce(people.c.plan, literal("")).label("plan"),
    ).select_from(ranked.outerjoin(people, people.c.user_id == ranked.c.user_id))


def ranking_page(
    connection: Connection,
    days: DayRange,
    search: str | None = None,
    page: int = 1,
    page_size: int = DEFAULT_PAGE_SIZE,
    source: Source = OWN,
) -> RankingPage:
    """One page of the spend ranking. Rank is the position in the whole period's ranking."""
    page = min(max(1, int(page)), MAX_PAGE)
    offset = (page - 1) * page_size
    ranked, totals = _ranking(connection, days)
    query = _with_users(ranked, source.users)
    matches = _matching_users(search, source)
    if matches is None:
        result = connection.execute(
            query.where(ranked.c.rank > offset).order_by(ranked.c.rank).limit(page_size)
        ).mappings().all()
        return RankingPage([_ranked_user(r) for r in result], totals.users, page, page_size,
                           totals)
    filtered = query.where(ranked.c.user_id.in_(matches)).subquery("filtered")
    result = connection.execute(
        select(filtered, over(func.count()).label("matching"))
        .order_by(filtered.c.rank).limit(page_size).offset(offset)
    ).mappings().all()
    if result:
        matching = int(result[0]["matching"])
    else:
        matching = int(connection.execute(select(func.count()).select_from(filtered)).scalar())
    return RankingPage([_ranked_user(r) for r in result], matching, page, page_size, totals)


def iter_ranking(
    connection: Connection, days: DayRange, search: str | None = None, chunk: int = 10_000,
    source: Source = OWN,
) -> Iterator[RankedUser]:
    """Every ranked user of the period (after search), in rank order, for export."""
    ranked, _ = _ranking(connection, days)
    query = _with_users(ranked, source.users)
    matches = _matching_users(search, source)
    if matches is not None:
        query = query.where(ranked.c.user_id.in_(matches))
    result = connection.execution_options(yield_per=chunk).execute(query.order_by(ranked.c.rank))
    for r in result.mappings():
        yield _ranked_user(r)


@dataclass(frozen=True)
class SeriesPoint:
    day: date
    spend_nanos: int
    events: int
    users: int


def data_bounds(connection: Connection) -> tuple[date | None, date | None]:
    """First and last business day that has any rolled-up usage."""
    t = daily_totals
    first, last = connection.execute(select(func.min(t.c.day), func.max(t.c.day))).one()
    return first, last


def daily_series(connection: Connection, days: DayRange, user_id: str | None = None
                 ) -> list[SeriesPoint]:
    """Spend per business day over `days` (all time: the whole history), gaps filled with 0."""
    start, end = days.start, days.end
    if not days.is_bounded:
        start, end = data_bounds(connection)
        if start is None:
            return []
    if user_id is None:
        t = daily_totals
        query = select(t.c.day, t.c.cost_nanos, t.c.events, t.c.users)
    else:
        d = daily_user_spend
        query = select(d.c.day, d.c.cost_nanos, d.c.events, literal(1)).where(
            d.c.user_id == user_id)
    query = query.where(query.selected_columns[0] >= start, query.selected_columns[0] <= end)
    found = {row[0]: row for row in connection.execute(query)}
    points = []
    day = start
    while day <= end:
        row = found.get(day)
        points.append(SeriesPoint(day, int(row[1]), int(row[2]), int(row[3])) if row
                      else SeriesPoint(day, 0, 0, 0))
        day += timedelta(days=1)
    return points


@dataclass(frozen=True)
class UserProfile:
    user_id: str
    name: str
    email: str
    plan: str
    signed_up_at: object
    is_placeholder: bool


def user_profile(connection: Connection, user_id: str, source: Source = OWN
                 ) -> UserProfile | None:
    people = source.users
    row = connection.execute(
        select(people).where(people.c.user_id == user_id)).mappings().first()
    if row is None:
        return None
    return UserProfile(row["user_id"], row["name"] or row["user_id"], row["email"], row["plan"],
                       row["signed_up_at"], bool(row["is_placeholder"]))


def user_rank(connection: Connection, days: DayRange, user_id: str, source: Source = OWN
              ) -> RankedUser | None:
    """The user's place in the period's ranking, or None when they spent nothing."""
    ranked, _ = _ranking(connection, days)
    row = connection.execute(
        _with_users(ranked, source.users).where(ranked.c.user_id == user_id)
    ).mappings().first()
    return _ranked_user(row) if row else None


@dataclass(frozen=True)
class ModelUsage:
    provider: str
    model: str
    spend_nanos: int
    events: int
    tokens: int


def user_models(connection: Connection, user_id: str, start_utc=None, end_utc=None,
                source: Source = OWN) -> list[ModelUsage]:
    """A user's spend by model over a UTC range (raw events of one user, indexed)."""
    e = source.events
    query = (
        select(e.c.provider, e.c.model, func.coalesce(func.sum(e.c.cost_nanos), 0),
               func.count(), func.coalesce(func.sum(e.c.input_tokens + e.c.output_tokens), 0))
        .where(e.c.user_id == user_id)
        .group_by(e.c.provider, e.c.model)
    )
    if start_utc is not None:
        query = query.where(e.c.occurred_at >= start_utc)
    if end_utc is not None:
        query = query.where(e.c.occurred_at < end_utc)
    rows = [ModelUsage(p, m, int(s), int(n), int(t)) for p, m, s, n, t in connection.execute(query)]
    return sorted(rows, key=lambda r: (-r.spend_nanos, r.model))


def annotations_between(connection: Connection, start: date | None, end: date | None
                        ) -> list[tuple[date, str]]:
    """Releases and campaigns in a day range, for marking charts."""
    query = select(annotations.c.day, annotations.c.title).order_by(annotations.c.day)
    if start is not None:
        query = query.where(annotations.c.day >= start)
    if end is not None:
        query = query.where(annotations.c.day <= end)
    return [(row[0], row[1]) for row in connection.execute(query)]


def has_demo_data(connection: Connection) -> bool:
    """Whether the events include generated demo events."""
    request_id = usage_events.c.request_id
    # a range on the unique index (every id starting "demo-"), never a scan of the events
    query = select(usage_events.c.id).where(request_id >= "demo-", request_id < "demo.")
    return connection.execute(query.limit(1)).first() is not None


def data_version(connection: Connection) -> tuple[str, int, str]:
    """Changes whenever a refresh changes the rollups: a cache key for query results.

    (Not the lock counter: that also moves for every import batch and stored ranking.)
    """
    row = connection.execute(
        select(rollup_state.c.timezone, rollup_state.c.watermark, rollup_state.c.refreshed_at)
    ).first()
    return (row[0], int(row[1]), str(row[2])) if row else ("", 0, "")


@dataclass(frozen=True)
class RankingOverview:
    """Everything the ranking page shows, read in one snapshot."""

    page: RankingPage
    previous: Totals | None
    series: list[SeriesPoint]
    annotations: list[tuple[date, str]]
    requested_page: int


def ranking_overview(
    engine: Engine, days: DayRange, search: str | None, page: int, page_size: int,
    source: Source = OWN,
) -> RankingOverview:
    """The ranking page's data; a page past the end falls back to the last page."""
    previous_range = days.previous()
    for wanted in (days, previous_range):
        if wanted is not None:
            build(engine, wanted)
    with snapshot(engine) as connection:
        result = ranking_page(connection, days, search, page, page_size, source)
        if not result.rows and result.matching and page > result.pages:
            result = ranking_page(connection, days, search, result.pages, page_size, source)
        previous = period_totals(connection, previous_range) if previous_range else None
        series = daily_series(connection, days)
        marks = annotations_between(connection, days.start, days.end)
    return RankingOverview(result, previous, series, marks, page)
