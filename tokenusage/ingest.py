"""Writing users, usage events and payments: batched, idempotent, atomic per batch."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import Any

from sqlalchemy import Connection, Engine, Table, insert, select, update

from tokenusage import rollups
from tokenusage.schema import SEARCH_SEPARATOR, payments, usage_events, users

BATCH_SIZE = 20_000

EVENT_FIELDS = (
    "request_id",
    "user_id",
    "occurred_at",
    "provider",
    "model",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cost_nanos",
    "cost_source",
)
USER_FIELDS = ("user_id", "name", "email", "plan", "signed_up_at")
PAYMENT_FIELDS = ("payment_id", "user_id", "paid_at", "amount_nanos")


@dataclass
class IngestStats:
    read: int = 0
    inserted: int = 0
    updated: int = 0
    duplicates: int = 0

    def add(self, other: IngestStats) -> None:
        self.read += other.read
        self.inserted += other.inserted
        self.updated += other.updated
        self.duplicates += other.duplicates


def search_key(user_id: str, name: str, email: str) -> str:
    """What user search matches against: id, name and email, casefolded, one per line."""
    return SEARCH_SEPARATOR.join(part.casefold() for part in (user_id, name or "", email or ""))


def batched(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        yield batch


def _user_row(row: Mapping[str, Any]) -> dict[str, Any]:
    user = {field: row.get(field) for field in USER_FIELDS}
    user["name"] = user["name"] or ""
    user["email"] = user["email"] or ""
    user["plan"] = user["plan"] or "free"
    user["search_key"] = search_key(user["user_id"], user["name"], user["email"])
    user["is_placeholder"] = False
    return user


def _existing(connection: Connection, column, keys: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for chunk in batched(sorted(set(keys)), 5_000):
        found.update(connection.execute(select(column).where(column.in_(chunk))).scalars())
    return found


def insert_rows(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert many rows through the driver's executemany, with SQLAlchemy's own type
    conversions but without its per-row statement bookkeeping (several times faster)."""
    if not rows:
        return
    columns = list(rows[0])
    compiled = insert(table).compile(dialect=connection.dialect, column_keys=columns)
    processors = {
        name: processor
        for name in columns
        if (processor := table.c[name].type._cached_bind_processor(connection.dialect))
    }

    if compiled.positional:
        order = [compiled.binds[name].key for name in compiled.positiontup]
    else:
        order = columns
    converted = [(i, processors[k]) for i, k in enumerate(order) if k in processors]
    params: list[Any] = []
    for row in rows:
        values = [row.get(k) for k in order]
        for i, convert in converted:
            values[i] = convert(values[i])
        params.append(tuple(values))
    if not compiled.positional:
        names = [next(n for n in compiled.binds if compiled.binds[n].key == k) for k in order]
        params = [dict(zip(names, values, strict=True)) for values in params]
    connection.exec_driver_sql(compiled.string, params)


def upsert_users(engine: Engine, rows: Iterable[Mapping[str, Any]]) -> IngestStats:
    """Insert new users and update name, email, plan and sign-up time of known ones."""
    stats = IngestStats()
    for batch in batched(rows, BATCH_SIZE):
        prepared = {row["user_id"]: _user_row(row) for row in batch}
        with engine.begin() as connection:
            known = _existing(connection, users.c.user_id, prepared)
            new = [row for key, row in prepared.items() if key not in known]
            if new:
                connection.execute(insert(users), new)
            changed = [row for key, row in prepared.items() if key in known]
            for row in changed:
                connection.execute(
                    update(users)
                    .where(users.c.user_id == row["user_id"])
                    .values({k: v for k, v in row.items() if k != "user_id"})
                )
        stats.add(IngestStats(read=len(batch), inserted=len(new), updated=len(changed),
                              duplicates=len(batch) - len(prepared)))
    return stats


def ensure_users(connection: Connection, user_ids: Iterable[str]) -> int:
    """Create placeholder users for ids not known yet, so every event has a user row."""
    wanted = set(user_ids)
    missing = wanted - _existing(connection, users.c.user_id, wanted)
    if missing:
        connection.execute(
            insert(users),
            [
                {"user_id": uid, "name": "", "email": "", "plan": "unknown",
                 "signed_up_at": None, "search_key": search_key(uid, "", ""),
                 "is_placeholder": True}
                for uid in sorted(missing)
            ],
        )
    return len(missing)


def _insert_new(
    engine: Engine,
    table: Table,
    key: str,
    rows: Iterable[Mapping[str, Any]],
    prepare: Callable[[Connection, list[dict[str, Any]]], None] | None = None,
    batch_size: int = BATCH_SIZE,
    on_batch: Callable[[IngestStats], None] | None = None,
) -> IngestStats:
    """Insert rows whose `key` is new, one transaction per batch, under the ingest lock."""
    stats = IngestStats()
    for batch in batched(rows, batch_size):
        unique: dict[str, dict[str, Any]] = {}
        for row in batch:
            unique.setdefault(row[key], dict(row))
        with engine.begin() as connection:
            rollups.lock(connection)
            known = _existing(connection, table.c[key], unique)
            new = [row for k, row in unique.items() if k not in known]
            if prepare and new:
                prepare(connection, new)
            insert_rows(connection, table, new)
        batch_stats = IngestStats(read=len(batch), inserted=len(new),
                                  duplicates=len(batch) - len(new))
        stats.add(batch_stats)
        if on_batch:
            on_batch(batch_stats)
    return stats


def _prepare_events(connection: Connection, rows: list[dict[str, Any]]) -> None:
    ensure_users(connection, (row["user_id"] for row in rows))


def insert_events(
    engine: Engine,
    rows: Iterable[Mapping[str, Any]],
    *,
    batch_size: int = BATCH_SIZE,
    on_batch: Callable[[IngestStats], None] | None = None,
) -> IngestStats:
    """Insert usage events, skipping request ids already stored. Does not refresh rollups."""
    return _insert_new(engine, usage_events, "request_id", rows, _prepare_events,
                       batch_size, on_batch)


def insert_payments(engine: Engine, rows: Iterable[Mapping[str, Any]]) -> IngestStats:
    """Insert payments, skipping payment ids already stored."""
    return _insert_new(engine, payments, "payment_id", rows, _prepare_events)
