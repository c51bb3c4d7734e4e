"""Where users and usage events are read from: our own tables, or a company's tables.

A mapping (the `[source]` section of `.streamlit/secrets.toml`, or the TOML file
named by TOKENUSAGE_SOURCE_FILE) names the company's tables and columns. The
dashboard then reads them in place, read-only, through SELECTs that rename their
columns to ours; only the rollups live in tables of its own.

    [source.events]
    table = "billing.llm_calls"      # schema-qualified names are fine
    id = "call_id"                   # integer that grows with every new row
    request_id = "request_uuid"
    user_id = "account_id"
    occurred_at = "created_at"
    model = "model_name"
    input_tokens = "prompt_tokens"
    output_tokens = "completion_tokens"
    # optional: provider, cached_input_tokens, cost_usd (a USD amount) or cost_nanos

    [source.users]
    table = "crm.accounts"
    user_id = "id"
    # optional: name, email, plan, signed_up_at
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Numeric,
    String,
    cast,
    column,
    func,
    literal,
    select,
    table,
)
from sqlalchemy.sql import FromClause

from tokenusage.config import ConfigError, Settings
from tokenusage.schema import SEARCH_SEPARATOR, usage_events, users

REQUIRED_EVENTS = ("table", "id", "request_id", "user_id", "occurred_at", "model",
                   "input_tokens", "output_tokens")
OPTIONAL_EVENTS = ("provider", "cached_input_tokens", "cost_usd", "cost_nanos")
REQUIRED_USERS = ("table", "user_id")
OPTIONAL_USERS = ("name", "email", "plan", "signed_up_at")


@dataclass(frozen=True)
class Source:
    """The events and users the dashboard reads, with our column names."""

    events: FromClause
    users: FromClause
    mapped: bool = False


OWN = Source(usage_events, users)


def _table(name: str, columns: list[str]):
    schema, _, bare = name.rpartition(".")
    return table(bare, *(column(c) for c in columns), schema=schema or None)


def _check(kind: str, mapping: Mapping[str, Any], required: tuple[str, ...],
           optional: tuple[str, ...]) -> dict[str, str]:
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"[source.{kind}] must be a table of column names")
    missing = [key for key in required if not mapping.get(key)]
    if missing:
        raise ConfigError(f"[source.{kind}] needs {', '.join(missing)}")
    unknown = set(mapping) - set(required) - set(optional)
    if unknown:
        raise ConfigError(f"[source.{kind}] has unknown keys: {', '.join(sorted(unknown))}")
    return {key: str(value) for key, value in mapping.items()}


def _events(mapping: dict[str, str]) -> FromClause:
    names = [v for k, v in mapping.items() if k != "table"]
    t = _table(mapping["table"], names)

    def col(key: str, kind=None, default=None):
        if key not in mapping:
            return literal(default, kind).label(key) if kind is not None else literal(default)
        value = t.c[mapping[key]]
        return (cast(value, kind) if kind is not None else value).label(key)

    if "cost_nanos" in mapping:
        cost = cast(t.c[mapping["cost_nanos"]], BigInteger)
    elif "cost_usd" in mapping:
        cost = cast(func.round(cast(t.c[mapping["cost_usd"]], Numeric(38, 9)) * 10**9),
                    BigInteger)
    else:
        cost = literal(None, BigInteger)
    return select(
        col("id", BigInteger),
        col("request_id", String),
        col("user_id", String),
        t.c[mapping["occurred_at"]].label("occurred_at"),
        col("provider", String, ""),
        col("model", String),
        col("input_tokens", BigInteger),
        col("output_tokens", BigInteger),
        col("cached_input_tokens", BigInteger, 0),
        cost.label("cost_nanos"),
        literal("source", String).label("cost_source"),
    ).subquery("usage_events")


def _users(mapping: dict[str, str]) -> FromClause:
    names = [v for k, v in mapping.items() if k != "table"]
    t = _table(mapping["table"], names)

    def text(key: str):
        if key not in mapping:
            return literal("", String)
        return func.coalesce(cast(t.c[mapping[key]], String), "")

    user_id = cast(t.c[mapping["user_id"]], String)
    key = func.lower(user_id + SEARCH_SEPARATOR + text("name") + SEARCH_SEPARATOR
                     + text("email"))
    signed_up = (t.c[mapping["signed_up_at"]] if "signed_up_at" in mapping
                 else literal(None, DateTime))
    return select(
        user_id.label("user_id"),
        text("name").label("name"),
        text("email").label("email"),
        text("plan").label("plan"),
        signed_up.label("signed_up_at"),
        key.label("search_key"),
        literal(False, Boolean).label("is_placeholder"),
    ).subquery("users")


def from_mapping(mapping: Mapping[str, Any] | None) -> Source:
    """A Source from a `[source]` mapping; our own tables when there is none."""
    if not mapping:
        return OWN
    events = _check("events", mapping.get("events") or {}, REQUIRED_EVENTS, OPTIONAL_EVENTS)
    people = _check("users", mapping.get("users") or {}, REQUIRED_USERS, OPTIONAL_USERS)
    if "cost_usd" in events and "cost_nanos" in events:
        raise ConfigError("[source.events] takes cost_usd or cost_nanos, not both")
    return Source(_events(events), _users(people), mapped=True)


def for_settings(settings: Settings) -> Source:
    return from_mapping(settings.source_mapping)
