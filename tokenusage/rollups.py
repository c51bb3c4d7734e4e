"""Rollups of usage events per user per business-timezone day, month and all time.

`refresh` folds the events added since the last refresh (a watermark on the event
id) into the rollups, in one transaction. Every writer of events takes the same
lock row first, so no event can commit behind the watermark. A change of the
business timezone rebuilds everything. `verify` recomputes the rollups from the
raw events with pandas and reports every difference.
"""

from __future__ import annotations

import time as _time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import (
    BigInteger,
    Connection,
    Date,
    Engine,
    Select,
    Table,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.sql import FromClause
from sqlalchemy.sql.elements import ColumnElement

from tokenusage.database import retry_on_conflict
from tokenusage.periods import day_start_utc, local_day
from tokenusage.schema import (
    daily_totals,
    daily_user_spend,
    monthly_user_spend,
    range_rankings,
    range_summaries,
    rollup_delta,
    rollup_delta_month,
    rollup_seen,
    rollup_state,
    user_spend_total,
)
from tokenusage.source import OWN, Source

STATE_ID = 1
VALUE_COLUMNS = ("cost_nanos", "events", "tokens", "unpriced")


@dataclass
class RefreshResult:
    mode: str
    events: int = 0
    seconds: float = 0.0


def lock(connection: Connection) -> None:
    """Take the rollup lock for this transaction: every writer of events and rollups does.

    The state row is created by the first migration; an UPDATE of it takes a row lock
    on server databases and the write lock on SQLite.
    """
    bump = (
        update(rollup_state)
        .where(rollup_state.c.id == STATE_ID)
        .values(generation=rollup_state.c.generation + 1)
    )
    if not connection.execute(bump).rowcount:
        raise RuntimeError("rollup_state is missing its row: run `python -m tokenusage init`")


def state(connection: Connection) -> dict[str, Any] | None:
    row = connection.execute(
        select(rollup_state).where(rollup_state.c.id == STATE_ID)
    ).mappings().first()
    return dict(row) if row else None


def bucket_expr(
    column: ColumnElement, starts: Sequence[Any], labels: Sequence[date]
) -> ColumnElement:
    """A portable SQL expression mapping `column` to the label of the last start <= it.

    A balanced tree of CASE expressions: about log2(len(starts)) comparisons a row.
    """

    def tree(lo: int, hi: int) -> ColumnElement:
        if hi - lo == 1:
            return literal(labels[lo], Date())
        mid = (lo + hi) // 2
        return case((column < starts[mid], tree(lo, mid)), else_=tree(mid, hi))

    return tree(0, len(starts))


def day_expr(column: ColumnElement, first: date, last: date, tz: ZoneInfo) -> ColumnElement:
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    return bucket_expr(column, [day_start_utc(d, tz) for d in days], days)


def month_start(day: date) -> date:
    return day.replace(day=1)


def _months(first: date, last: date) -> list[date]:
    months, current = [], month_start(first)
    while current <= last:
        months.append(current)
        current = (current + timedelta(days=32)).replace(day=1)
    return months


def month_expr(column: ColumnElement, first: date, last: date) -> ColumnElement:
    months = _months(first, last)
    return bucket_expr(column, months, months)


def _aggregates(source: Table | Any, from_events: bool) -> list[ColumnElement]:
    if from_events:
        cost = source.c.cost_nanos
        return [
            func.sum(func.coalesce(cost, 0)).label("cost_nanos"),
            func.count().label("events"),
            func.sum(source.c.input_tokens + source.c.output_tokens).label("tokens"),
            func.sum(case((cost.is_(None), 1), else_=0)).label("unpriced"),
        ]
    return [func.sum(source.c[name]).label(name) for name in VALUE_COLUMNS]


MAX_CASE_DAYS = 400


def _events_by_day(e: FromClause, tz: ZoneInfo, first: date, last: date,
                   new: list[ColumnElement]) -> list[Select]:
    """Per-day, per-user sums of the new events (conditions `new`), one query per window of
    at most MAX_CASE_DAYS days (so the bucketing expression stays small)."""
    queries = []
    start = first
    while start <= last:
        end = min(last, start + timedelta(days=MAX_CASE_DAYS - 1))
        window = list(new)
        if (start, end) != (first, last):
            window += [e.c.occurred_at >= day_start_utc(start, tz),
                       e.c.occurred_at < day_start_utc(end + timedelta(days=1), tz)]
        rows = (
            select(
                day_expr(e.c.occurred_at, start, end, tz).label("day"),
                e.c.user_id,
                e.c.cost_nanos,
                e.c.input_tokens,
                e.c.output_tokens,
            )
            .where(*window)
            .subquery("bucketed")
        )
        queries.append(select(rows.c.day, rows.c.user_id, *_aggregates(rows, True))
                       .group_by(rows.c.day, rows.c.user_id))
        start = end + timedelta(days=1)
    return queries


def _merge(connection: Connection, target: Table, delta: Table, bucket: str, first: date,
           last: date) -> None:
    """Add staged deltas into a rollup keyed by (bucket, user_id): update, then insert new."""
    match = and_(delta.c[bucket] == target.c[bucket], delta.c.user_id == target.c.user_id)
    in_range = (target.c[bucket] >= first, target.c[bucket] <= last)
    connection.execute(
        update(target)
        .where(match, *in_range)
        .values({name: target.c[name] + delta.c[name] for name in VALUE_COLUMNS})
    )
    columns = [bucket, "user_id", *VALUE_COLUMNS]
    connection.execute(
        insert(target).from_select(
            columns,
            select(*(delta.c[c] for c in columns)).where(~exists().where(match).where(*in_range)),
        )
    )


def _insert_by_month(connection: Connection, source: Table, target: Table, first: date,
                     last: date) -> tuple[date, date]:
    """Sum the per-day rows of `source` (days first..last) by month and user into `target`;
    return the first and last month."""
    months = _months(first, last)
    rows = select(
        month_expr(source.c.day, months[0], months[-1]).label("month"),
        source.c.user_id,
        *(source.c[name] for name in VALUE_COLUMNS),
    ).subquery("bucketed")
    connection.execute(
        insert(target).from_select(
            ["month", "user_id", *VALUE_COLUMNS],
            select(rows.c.month, rows.c.user_id, *_aggregates(rows, False))
            .group_by(rows.c.month, rows.c.user_id),
        )
    )
    return months[0], months[-1]


def _add_to_totals(connection: Connection) -> None:
    """Add the staged monthly deltas into the all-time totals per user."""
    target, delta = user_spend_total, rollup_delta_month
    mine = delta.c.user_id == target.c.user_id
    per_user = (
        select(delta.c.user_id, *_aggregates(delta, False))
        .group_by(delta.c.user_id)
        .subquery("per_user")
    )
    connection.execute(
        update(target)
        .where(target.c.user_id == per_user.c.user_id)
        .values({name: target.c[name] + per_user.c[name] for name in VALUE_COLUMNS})
    )
    connection.execute(
        insert(target).from_select(
            ["user_id", *VALUE_COLUMNS],
            select(delta.c.user_id, *_aggregates(delta, False))
            .where(~exists().where(mine))
            .group_by(delta.c.user_id),
        )
    )


def _rebuild_totals(connection: Connection) -> None:
    monthly = monthly_user_spend
    connection.execute(
        insert(user_spend_total).from_select(
            ["user_id", *VALUE_COLUMNS],
            select(monthly.c.user_id, *_aggregates(monthly, False)).group_by(monthly.c.user_id),
        )
    )


def _rebuild_day_totals(connection: Connection, first: date | None, last: date | None) -> None:
    d = daily_user_spend
    query = select(d.c.day, *_aggregates(d, False), func.count().label("users")).group_by(d.c.day)
    wipe = delete(daily_totals)
    if first is not None:
        query = query.where(d.c.day >= first, d.c.day <= last)
        wipe = wipe.where(daily_totals.c.day >= first, daily_totals.c.day <= last)
    connection.execute(wipe)
    connection.execute(
        insert(daily_totals).from_select(["day", *VALUE_COLUMNS, "users"], query)
    )


def drop_ranges(connection: Connection, first: date | None, last: date | None) -> None:
    """Drop stored range rankings containing a day of [first, last] (None: all of them)."""
    s = range_summaries
    query = select(s.c.range_key)
    if first is not None:
        query = query.where(or_(s.c.start_day.is_(None),
                                and_(s.c.start_day <= last, s.c.end_day >= first)))
    keys = connection.execute(query).scalars().all()
    if keys:
        connection.execute(delete(range_rankings).where(range_rankings.c.range_key.in_(keys)))
        connection.execute(delete(s).where(s.c.range_key.in_(keys)))


SEEN_WINDOW = 1_000_000


def _claim_new_ids(connection: Connection, events: FromClause, low: int, high: int,
                   refresh_id: int, full: bool) -> list[ColumnElement]:
    """For a mapped source: record the ids this refresh folds in, and select exactly those.

    Ids up to SEEN_WINDOW below the watermark are looked at again, so an event whose id
    committed after a higher one (a sequence in another writer's open transaction) is
    still counted, once.
    """
    seen = rollup_seen
    floor = 0 if full else max(0, low - SEEN_WINDOW)
    connection.execute(
        insert(seen).from_select(
            ["id", "refresh"],
            select(events.c.id, literal(refresh_id, BigInteger)).where(
                events.c.id > floor, events.c.id <= high,
                events.c.id.not_in(select(seen.c.id).where(seen.c.id > floor)),
            ),
        )
    )
    connection.execute(delete(seen).where(seen.c.id <= high - SEEN_WINDOW))
    return [events.c.id > floor, events.c.id <= high,
            events.c.id.in_(select(seen.c.id).where(seen.c.refresh == refresh_id))]


def clear(connection: Connection) -> None:
    for table in (rollup_seen, rollup_delta, rollup_delta_month, user_spend_total,
                  monthly_user_spend, daily_user_spend, daily_totals, range_rankings,
                  range_summaries):
        connection.execute(delete(table))


@retry_on_conflict
def refresh(engine: Engine, timezone: str, *, rebuild: bool = False, source: Source = OWN
            ) -> RefreshResult:
    """Bring the rollups up to date with the events, for business timezone `timezone`."""
    events = source.events
    started = _time.perf_counter()
    tz = ZoneInfo(timezone)
    with engine.begin() as connection:
        lock(connection)
        current = state(connection)
        full = rebuild or current["timezone"] != timezone
        low = 0 if full else current["watermark"]
        if full:
            clear(connection)
        high = connection.execute(select(func.max(events.c.id))).scalar() or 0
        new = [events.c.id > low, events.c.id <= high]
        if source.mapped:
            new = _claim_new_ids(connection, events, low, high, current["generation"], full)
        # count() alongside keeps PostgreSQL on the id range instead of a time-index scan
        earliest, latest, count = connection.execute(
            select(func.min(events.c.occurred_at), func.max(events.c.occurred_at), func.count())
            .where(*new)
        ).one()
        if count:
            first, last = local_day(earliest, tz), local_day(latest, tz)
            by_day = _events_by_day(events, tz, first, last, new)
            columns = ["day", "user_id", *VALUE_COLUMNS]
            if full:
                for query in by_day:
                    connection.execute(insert(daily_user_spend).from_select(columns, query))
                _insert_by_month(connection, daily_user_spend, monthly_user_spend, first, last)
                _rebuild_totals(connection)
                _rebuild_day_totals(connection, None, None)
            else:
                connection.execute(delete(rollup_delta))
                connection.execute(delete(rollup_delta_month))
                for query in by_day:
                    connection.execute(insert(rollup_delta).from_select(columns, query))
                _merge(connection, daily_user_spend, rollup_delta, "day", first, last)
                first_month, last_month = _insert_by_month(
                    connection, rollup_delta, rollup_delta_month, first, last)
                _merge(connection, monthly_user_spend, rollup_delta_month, "month",
                       first_month, last_month)
                _add_to_totals(connection)
                _rebuild_day_totals(connection, first, last)
                drop_ranges(connection, first, last)
                connection.execute(delete(rollup_delta))
                connection.execute(delete(rollup_delta_month))
        connection.execute(
            update(rollup_state)
            .where(rollup_state.c.id == STATE_ID)
            .values(timezone=timezone, watermark=max(high, low),
                    refreshed_at=datetime.now(UTC).replace(tzinfo=None))
        )
    mode = "rebuild" if full else ("incremental" if count else "up to date")
    return RefreshResult(mode, count, _time.perf_counter() - started)


def pending_events(engine: Engine, source: Source = OWN) -> int:
    """How many events are stored but not yet folded into the rollups."""
    with engine.connect() as connection:
        current = state(connection)
        watermark = current["watermark"] if current else 0
        return connection.execute(
            select(func.count()).select_from(source.events)
            .where(source.events.c.id > watermark)
        ).scalar()


def is_current(engine: Engine, timezone: str, source: Source = OWN) -> bool:
    """Whether the rollups are built for `timezone` and hold every stored event."""
    events = source.events
    with engine.connect() as connection:
        current = state(connection)
        if not current or current["timezone"] != timezone:
            return False
        newest = connection.execute(select(func.max(events.c.id))).scalar() or 0
        if current["watermark"] < newest:
            return False
        if not source.mapped:
            return True
        floor = max(0, current["watermark"] - SEEN_WINDOW)
        late = select(events.c.id).where(
            events.c.id > floor, events.c.id <= current["watermark"],
            events.c.id.not_in(select(rollup_seen.c.id).where(rollup_seen.c.id > floor)),
        ).limit(1)
        return connection.execute(late).first() is None


@dataclass
class VerifyReport:
    checked_events: int = 0
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences


def _expected(engine: Engine, events: FromClause, tz: ZoneInfo, watermark: int,
              chunk: int = 500_000) -> pd.DataFrame:
    parts: list[pd.DataFrame] = []
    query = select(
        events.c.user_id,
        events.c.occurred_at,
        events.c.cost_nanos,
        (events.c.input_tokens + events.c.output_tokens).label("tokens"),
    ).where(events.c.id <= watermark)
    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True).execute(query)
        while rows := result.fetchmany(chunk):
            frame = pd.DataFrame(rows, columns=["user_id", "occurred_at", "cost", "tokens"])
            moments = pd.to_datetime(frame["occurred_at"], utc=True)
            frame["day"] = moments.dt.tz_convert(tz).dt.date
            frame["unpriced"] = frame["cost"].isna().astype("int64")
            frame["cost_nanos"] = frame["cost"].fillna(0).astype("int64")
            frame["events"] = 1
            parts.append(
                frame.groupby(["day", "user_id"])[list(VALUE_COLUMNS)].sum().reset_index()
            )
    if not parts:
        return pd.DataFrame(columns=["day", "user_id", *VALUE_COLUMNS])
    return pd.concat(parts).groupby(["day", "user_id"])[list(VALUE_COLUMNS)].sum().reset_index()


def _compare(name: str, keys: list[str], expected: pd.DataFrame, actual: pd.DataFrame,
             report: VerifyReport, limit: int = 20) -> None:
    merged = expected.merge(actual, on=keys, how="outer", suffixes=("_expected", "_stored"))
    for column in VALUE_COLUMNS:
        merged[f"{column}_expected"] = merged[f"{column}_expected"].fillna(0).astype("int64")
        merged[f"{column}_stored"] = merged[f"{column}_stored"].fillna(0).astype("int64")
    wrong = merged[
        sum((merged[f"{c}_expected"] != merged[f"{c}_stored"]) for c in VALUE_COLUMNS) > 0
    ]
    for row in wrong.head(limit).itertuples(index=False):
        values = row._asdict()
        where = ", ".join(f"{k}={values[k]}" for k in keys)
        diff = ", ".join(
            f"{c}: expected {values[f'{c}_expected']} stored {values[f'{c}_stored']}"
            for c in VALUE_COLUMNS
            if values[f"{c}_expected"] != values[f"{c}_stored"]
        )
        report.differences.append(f"{name} [{where}] {diff}")
    if len(wrong) > limit:
        report.differences.append(f"{name}: {len(wrong) - limit} more differing rows")


def _table_frame(engine: Engine, table: Table, keys: list[str]) -> pd.DataFrame:
    with engine.connect() as connection:
        rows = connection.execute(select(*(table.c[k] for k in keys),
                                         *(table.c[c] for c in VALUE_COLUMNS))).all()
    frame = pd.DataFrame(rows, columns=[*keys, *VALUE_COLUMNS])
    for key in keys:
        if key in ("day", "month"):
            frame[key] = pd.to_datetime(frame[key]).dt.date
    return frame


def verify(engine: Engine, timezone: str, source: Source = OWN) -> VerifyReport:
    """Recompute every rollup from the raw events (independently, in pandas) and compare."""
    report = VerifyReport()
    with engine.connect() as connection:
        current = state(connection)
    if current is None or current["timezone"] != timezone:
        built_for = current["timezone"] if current else "nothing"
        report.differences.append(
            f"rollups are built for {built_for!r}, not {timezone!r}: run refresh"
        )
        return report
    tz = ZoneInfo(timezone)
    expected_daily = _expected(engine, source.events, tz, current["watermark"])
    report.checked_events = int(expected_daily["events"].sum()) if len(expected_daily) else 0
    expected_monthly = expected_daily.assign(
        month=[month_start(d) for d in expected_daily["day"]]
    ).groupby(["month", "user_id"])[list(VALUE_COLUMNS)].sum().reset_index()
    expected_totals = expected_daily.groupby("user_id")[list(VALUE_COLUMNS)].sum().reset_index()
    expected_days = expected_daily.groupby("day")[list(VALUE_COLUMNS)].sum().reset_index()
    _compare("daily", ["day", "user_id"], expected_daily,
             _table_frame(engine, daily_user_spend, ["day", "user_id"]), report)
    _compare("monthly", ["month", "user_id"], expected_monthly,
             _table_frame(engine, monthly_user_spend, ["month", "user_id"]), report)
    _compare("total", ["user_id"], expected_totals,
             _table_frame(engine, user_spend_total, ["user_id"]), report)
    _compare("day", ["day"], expected_days, _table_frame(engine, daily_totals, ["day"]), report)
    return report
