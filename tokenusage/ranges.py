"""Per-user spend over a day range, and materialised rankings of day ranges.

A range reads whole months from the monthly tier and its edges from the daily tier
(all time: the per-user totals). The first request for a range stores its full
ranking in `range_rankings` (with totals in `range_summaries`), so every later
page, search and count reads a few indexed rows. A refresh drops exactly the
stored ranges that contain a changed day.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Connection,
    Engine,
    Select,
    delete,
    func,
    insert,
    literal,
    select,
    union_all,
)

from tokenusage import rollups
from tokenusage.database import retry_on_conflict
from tokenusage.periods import DayRange, Period, resolve
from tokenusage.rollups import month_start
from tokenusage.schema import (
    daily_totals,
    daily_user_spend,
    monthly_user_spend,
    range_rankings,
    range_summaries,
    user_spend_total,
)

MAX_STORED_RANGES = 24
VALUES = ("cost_nanos", "events", "tokens", "unpriced")


def _month_end(month: date) -> date:
    return (month + timedelta(days=32)).replace(day=1) - timedelta(days=1)


def _pieces(days: DayRange) -> list[Select]:
    """Per-user rows covering `days`: whole months from the monthly tier, edges from daily."""
    values = ("cost_nanos", "events", "tokens", "unpriced")

    def daily(start: date, end: date) -> Select:
        d = daily_user_spend
        return select(d.c.user_id, *(d.c[v] for v in values)).where(
            d.c.day >= start, d.c.day <= end
        )

    if not days.is_bounded:
        t = user_spend_total
        return [select(t.c.user_id, *(t.c[v] for v in values))]
    first_full = month_start(days.start)
    if first_full < days.start:
        first_full = _month_end(first_full) + timedelta(days=1)
    last_full = month_start(days.end)
    if _month_end(last_full) > days.end:
        last_full = month_start(last_full - timedelta(days=1))
    if first_full > last_full:
        return [daily(days.start, days.end)]
    m = monthly_user_spend
    pieces = [
        select(m.c.user_id, *(m.c[v] for v in values)).where(
            m.c.month >= first_full, m.c.month <= last_full
        )
    ]
    if days.start < first_full:
        pieces.append(daily(days.start, first_full - timedelta(days=1)))
    if days.end > _month_end(last_full):
        pieces.append(daily(_month_end(last_full) + timedelta(days=1), days.end))
    return pieces


def spend_by_user(days: DayRange):
    """Subquery: spend, calls, tokens and unpriced calls per user over `days`; spenders only."""
    pieces = _pieces(days)
    if len(pieces) == 1 and not days.is_bounded:
        source = pieces[0].subquery("spend_rows")
        return (
            select(
                source.c.user_id,
                source.c.cost_nanos.label("spend"),
                source.c.events,
                source.c.tokens,
                source.c.unpriced,
            )
            .where(source.c.cost_nanos > 0)
            .subquery("spend")
        )
    source = (pieces[0] if len(pieces) == 1 else union_all(*pieces)).subquery("spend_rows")
    spend = func.sum(source.c.cost_nanos)
    return (
        select(
            source.c.user_id,
            spend.label("spend"),
            func.sum(source.c.events).label("events"),
            func.sum(source.c.tokens).label("tokens"),
            func.sum(source.c.unpriced).label("unpriced"),
        )
        .group_by(source.c.user_id)
        .having(spend > 0)
        .subquery("spend")
    )


def day_sums(connection: Connection, days: DayRange) -> dict[str, int]:
    """Spend, calls, tokens and unpriced calls of a range, from the per-day totals.

    Counts every call, including those of users whose calls in the range all lack a price.
    """
    t = daily_totals
    query = select(*(func.coalesce(func.sum(t.c[v]), 0).label(v) for v in VALUES))
    if days.is_bounded:
        query = query.where(t.c.day >= days.start, t.c.day <= days.end)
    row = connection.execute(query).one()
    return {v: int(row[i]) for i, v in enumerate(VALUES)}


def range_key(days: DayRange) -> str:
    if not days.is_bounded:
        return "all"
    return f"{days.start.isoformat()}_{days.end.isoformat()}"


def stored(connection: Connection, days: DayRange) -> dict | None:
    """The stored summary of a range, or None when it has not been built (or was dropped)."""
    row = connection.execute(
        select(range_summaries).where(range_summaries.c.range_key == range_key(days))
    ).mappings().first()
    return dict(row) if row else None


@retry_on_conflict
def build(engine: Engine, days: DayRange) -> bool:
    """Store the ranking of `days` unless it is stored already. True if it was built."""
    key = range_key(days)
    with engine.connect() as connection:
        if stored(connection, days) is not None:
            return False
    with engine.begin() as connection:
        rollups.lock(connection)
        if stored(connection, days) is not None:  # built meanwhile by another process
            return False
        spend = spend_by_user(days)
        order = (spend.c.spend.desc(), spend.c.user_id.asc())
        connection.execute(
            insert(range_rankings).from_select(
                ["range_key", "rank", "user_id", *VALUES],
                select(
                    literal(key).label("range_key"),
                    func.row_number().over(order_by=order).label("rank"),
                    spend.c.user_id,
                    spend.c.spend,
                    spend.c.events,
                    spend.c.tokens,
                    spend.c.unpriced,
                ),
            )
        )
        spenders = connection.execute(
            select(func.count()).where(range_rankings.c.range_key == key)
        ).scalar()
        connection.execute(
            insert(range_summaries).values(
                range_key=key, start_day=days.start, end_day=days.end,
                **day_sums(connection, days), users=int(spenders),
                built_at=datetime.now(UTC).replace(tzinfo=None),
            )
        )
        _prune(connection, keep=key)
    return True


def _prune(connection: Connection, keep: str) -> None:
    s = range_summaries
    old = connection.execute(
        select(s.c.range_key).where(s.c.range_key != keep)
        .order_by(s.c.built_at.desc()).offset(MAX_STORED_RANGES - 1)
    ).scalars().all()
    if old:
        connection.execute(delete(range_rankings).where(range_rankings.c.range_key.in_(old)))
        connection.execute(delete(s).where(s.c.range_key.in_(old)))


def warm(engine: Engine, timezone: str) -> int:
    """Build the stored rankings of the preset periods (and the periods they are compared
    with), so the first page view after a refresh does not wait for them. Returns how many
    were built."""
    tz = ZoneInfo(timezone)
    built = 0
    for period in (Period.TODAY, Period.LAST_30_DAYS, Period.ALL):
        days = resolve(period, tz)
        for wanted in (days, days.previous()):
            if wanted is not None:
                built += build(engine, wanted)
    return built
