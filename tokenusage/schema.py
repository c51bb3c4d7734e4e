"""The database schema as SQLAlchemy Core tables. Alembic migrations create it."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects import mysql

metadata = MetaData()

# users.search_key joins the casefolded id, name and email with this separator.
SEARCH_SEPARATOR = "\n"

ID_TYPE = BigInteger().with_variant(Integer(), "sqlite")
# Naive UTC times; MySQL and MariaDB keep microseconds only when asked to.
TIMESTAMP = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
USER_ID = String(191)

users = Table(
    "users",
    metadata,
    Column("user_id", USER_ID, primary_key=True),
    Column("name", String(255), nullable=False, server_default=""),
    Column("email", String(255), nullable=False, server_default=""),
    Column("plan", String(64), nullable=False, server_default="free"),
    Column("signed_up_at", TIMESTAMP, nullable=True),
    Column("search_key", Text(), nullable=False, server_default=""),
    Column("is_placeholder", Boolean(), nullable=False, server_default="0"),
)

usage_events = Table(
    "usage_events",
    metadata,
    Column("id", ID_TYPE, primary_key=True),
    Column("request_id", String(191), nullable=False, unique=True),
    Column("user_id", USER_ID, nullable=False),
    Column("occurred_at", TIMESTAMP, nullable=False),
    Column("provider", String(64), nullable=False, server_default=""),
    Column("model", String(128), nullable=False, server_default=""),
    Column("input_tokens", BigInteger(), nullable=False, server_default="0"),
    Column("output_tokens", BigInteger(), nullable=False, server_default="0"),
    Column("cached_input_tokens", BigInteger(), nullable=False, server_default="0"),
    Column("cost_nanos", BigInteger(), nullable=True),
    Column("cost_source", String(16), nullable=False, server_default="source"),
    Index("ix_usage_events_occurred_at", "occurred_at"),
    Index("ix_usage_events_user_id_occurred_at", "user_id", "occurred_at"),
)

payments = Table(
    "payments",
    metadata,
    Column("payment_id", String(191), primary_key=True),
    Column("user_id", USER_ID, nullable=False, index=True),
    Column("paid_at", TIMESTAMP, nullable=False),
    Column("amount_nanos", BigInteger(), nullable=False),
)

annotations = Table(
    "annotations",
    metadata,
    Column("id", ID_TYPE, primary_key=True),
    Column("day", Date(), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("title", String(255), nullable=False),
)

# Rollups: derived from usage_events by tokenusage.rollups, never written elsewhere.

rollup_state = Table(
    "rollup_state",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=False),
    Column("timezone", String(64), nullable=False),
    Column("watermark", BigInteger(), nullable=False),
    Column("generation", BigInteger(), nullable=False),
    Column("refreshed_at", DateTime(), nullable=True),
)

def _spend_columns() -> list[Column]:
    return [
        Column("cost_nanos", BigInteger(), nullable=False),
        Column("events", BigInteger(), nullable=False),
        Column("tokens", BigInteger(), nullable=False),
        Column("unpriced", BigInteger(), nullable=False),
    ]


daily_user_spend = Table(
    "daily_user_spend",
    metadata,
    Column("day", Date(), nullable=False),
    Column("user_id", USER_ID, nullable=False),
    *_spend_columns(),
    PrimaryKeyConstraint("day", "user_id"),
    Index("ix_daily_user_spend_user_id", "user_id"),
)

monthly_user_spend = Table(
    "monthly_user_spend",
    metadata,
    Column("month", Date(), nullable=False),
    Column("user_id", USER_ID, nullable=False),
    *_spend_columns(),
    PrimaryKeyConstraint("month", "user_id"),
)

user_spend_total = Table(
    "user_spend_total",
    metadata,
    Column("user_id", USER_ID, primary_key=True),
    *_spend_columns(),
)

daily_totals = Table(
    "daily_totals",
    metadata,
    Column("day", Date(), primary_key=True),
    *_spend_columns(),
    Column("users", BigInteger(), nullable=False),
)

# Materialised rankings of day ranges ("all" for all time), built on first use and
# dropped by a refresh that changes any of their days.
range_summaries = Table(
    "range_summaries",
    metadata,
    Column("range_key", String(32), primary_key=True),
    Column("start_day", Date(), nullable=True),
    Column("end_day", Date(), nullable=True),
    *_spend_columns(),
    Column("users", BigInteger(), nullable=False),
    Column("built_at", DateTime(), nullable=False),
)

range_rankings = Table(
    "range_rankings",
    metadata,
    Column("range_key", String(32), nullable=False),
    Column("rank", BigInteger(), nullable=False),
    Column("user_id", USER_ID, nullable=False),
    *_spend_columns(),
    PrimaryKeyConstraint("range_key", "rank"),
    Index("ix_range_rankings_user", "range_key", "user_id"),
)

# Scratch table the refresh stages one batch of per-day deltas in.
rollup_delta = Table(
    "rollup_delta",
    metadata,
    Column("day", Date(), nullable=False),
    Column("user_id", USER_ID, nullable=False),
    *_spend_columns(),
    PrimaryKeyConstraint("day", "user_id"),
)

# Ids of a mapped source's recent events already folded into the rollups: a company's
# writers do not take our lock, so an id may commit after a higher one was counted.
rollup_seen = Table(
    "rollup_seen",
    metadata,
    Column("id", BigInteger(), primary_key=True, autoincrement=False),
    Column("refresh", BigInteger(), nullable=False),
    Index("ix_rollup_seen_refresh", "refresh"),
)

rollup_delta_month = Table(
    "rollup_delta_month",
    metadata,
    Column("month", Date(), nullable=False),
    Column("user_id", USER_ID, nullable=False),
    *_spend_columns(),
    PrimaryKeyConstraint("user_id", "month"),
)


# Local prices (negotiated or self-hosted models), in nano-dollars per million tokens.
# They win over genai-prices for events at or after `effective_from` (naive UTC).
price_overrides = Table(
    "price_overrides",
    metadata,
    Column("id", ID_TYPE, primary_key=True),
    Column("provider", String(64), nullable=False),
    Column("model", String(128), nullable=False),
    Column("effective_from", DateTime(), nullable=False),
    Column("input_nanos_per_mtok", BigInteger(), nullable=False),
    Column("cached_input_nanos_per_mtok", BigInteger(), nullable=False),
    Column("output_nanos_per_mtok", BigInteger(), nullable=False),
    Index("ix_price_overrides_model", "provider", "model"),
)
