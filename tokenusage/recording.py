"""Recording LLM usage from the product, one call at a time.

`record_usage` stores one usage event (idempotent on its request id) and prices it like
an import does when no cost is given. It does not refresh the rollups: the dashboard
and `python -m tokenusage refresh` fold new events in on their own.
"""

from __future__ import annotations

import threading
import time
import uuid
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine

from tokenusage import database, ingest
from tokenusage.importer import RowError, event_row
from tokenusage.prices import PriceBook

PRICE_BOOK_TTL = 60.0

_books: weakref.WeakKeyDictionary[Engine, tuple[float, PriceBook]] = weakref.WeakKeyDictionary()
_books_lock = threading.Lock()


@dataclass(frozen=True)
class RecordedEvent:
    """The stored event: `inserted` is false when its request id was already recorded."""

    request_id: str
    inserted: bool
    cost_nanos: int | None
    cost_source: str


@lru_cache(maxsize=16)
def _engine_for(url: str) -> Engine:
    return database.make_engine(url)


def _engine(engine_or_url: Engine | str) -> Engine:
    return _engine_for(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url


def _price_book(engine: Engine) -> PriceBook:
    """The price overrides of `engine`, reloaded at most every PRICE_BOOK_TTL seconds."""
    now = time.monotonic()
    with _books_lock:
        cached = _books.get(engine)
        if cached and now - cached[0] < PRICE_BOOK_TTL:
            return cached[1]
    book = PriceBook.load(engine)
    with _books_lock:
        _books[engine] = (now, book)
    return book


def record_usage(
    engine_or_url: Engine | str,
    *,
    user_id: str,
    model: str,
    input_tokens: int,
    output_tokens: int,
    cached_input_tokens: int = 0,
    provider: str | None = None,
    request_id: str | None = None,
    occurred_at: datetime | None = None,
    cost_usd: Decimal | str | int | None = None,
) -> RecordedEvent:
    """Store one LLM call. Call it after each call the product makes.

    `cached_input_tokens` are part of `input_tokens` (OpenAI's convention). Without a
    `request_id` a random one (uuid4) is used; with one, recording the same call twice
    stores it once. `occurred_at` defaults to now (naive means UTC). Without `cost_usd`
    (a Decimal or string, never a float) the cost is computed from the token counts at
    the price of the time; an unknown model is stored unpriced. An unknown user gets a
    placeholder user row. Raises ValueError for invalid values, TypeError for a float cost.
    """
    if isinstance(cost_usd, float):
        raise TypeError("cost_usd must not be a float; pass a Decimal or a string")
    engine = _engine(engine_or_url)
    moment = occurred_at or datetime.now(UTC)
    values = {
        "request_id": request_id or str(uuid.uuid4()),
        "user_id": user_id,
        "occurred_at": moment,
        "provider": provider or "",
        "model": model,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cached_input_tokens": cached_input_tokens,
        "cost_usd": cost_usd,
    }
    try:
        row = event_row(values, _price_book(engine))
    except RowError as exc:
        raise ValueError(str(exc)) from None
    stats = ingest.insert_events(engine, [row])
    return RecordedEvent(row["request_id"], stats.inserted == 1, row["cost_nanos"],
                         row["cost_source"])


def _get(source: Any, name: str) -> Any:
    if source is None:
        return None
    if isinstance(source, Mapping):
        return source.get(name)
    return getattr(source, name, None)


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def openai_usage(response: Any) -> dict[str, Any]:
    """Model, id, creation time and token counts of an OpenAI-style response (object or dict).

    Understands Chat Completions (`prompt_tokens`, `completion_tokens`,
    `prompt_tokens_details.cached_tokens`) and the Responses API (`input_tokens`,
    `output_tokens`, `input_tokens_details.cached_tokens`).
    """
    usage = _get(response, "usage")
    if usage is None:
        raise ValueError("the response has no usage (for streams, ask for usage in the "
                         "last chunk: stream_options={'include_usage': True})")
    input_tokens = _first(_get(usage, "prompt_tokens"), _get(usage, "input_tokens"))
    output_tokens = _first(_get(usage, "completion_tokens"), _get(usage, "output_tokens"))
    details = _first(_get(usage, "prompt_tokens_details"), _get(usage, "input_tokens_details"))
    if input_tokens is None or output_tokens is None:
        raise ValueError("the response usage has no input and output token counts")
    created = _first(_get(response, "created"), _get(response, "created_at"))
    occurred_at = None
    if isinstance(created, int | float | Decimal) and not isinstance(created, bool):
        occurred_at = datetime.fromtimestamp(float(created), UTC)
    return {
        "model": _get(response, "model"),
        "request_id": _get(response, "id"),
        "occurred_at": occurred_at,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cached_input_tokens": _get(details, "cached_tokens") or 0,
    }


def record_openai_usage(
    engine_or_url: Engine | str,
    user_id: str,
    response: Any,
    *,
    provider: str | None = "openai",
    model: str | None = None,
    request_id: str | None = None,
    occurred_at: datetime | None = None,
    cost_usd: Decimal | str | int | None = None,
) -> RecordedEvent:
    """Record the usage of an OpenAI-style response (an SDK object or its dict).

    The response's `id` is the request id (so recording it twice stores it once), its
    `model` the model and its `created` time the event time, unless given explicitly.
    Set `provider` for OpenAI-compatible APIs of other providers (e.g. "azure", "groq").
    """
    found = openai_usage(response)
    name = model or found["model"]
    if not name:
        raise ValueError("the response has no model; pass model=")
    return record_usage(
        engine_or_url,
        user_id=user_id,
        model=name,
        input_tokens=found["input_tokens"],
        output_tokens=found["output_tokens"],
        cached_input_tokens=found["cached_input_tokens"],
        provider=provider,
        request_id=request_id or found["request_id"],
        occurred_at=occurred_at or found["occurred_at"],
        cost_usd=cost_usd,
    )
