"""Recording usage from the product: record_usage and the OpenAI response helper."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
from genai_prices import Usage, calc_price
from sqlalchemy import select

import tokenusage
from tokenusage import recording, rollups
from tokenusage.money import to_nanos
from tokenusage.prices import set_override
from tokenusage.schema import usage_events, users

WHEN = datetime(2026, 11, 3, 14, 30, 5)


def events(engine) -> list[dict]:
    with engine.connect() as connection:
        return [dict(r) for r in connection.execute(
            select(usage_events).order_by(usage_events.c.id)).mappings()]


def direct(model: str, provider: str, when: datetime, i: int, o: int, c: int) -> int:
    usage = Usage(input_tokens=i, cache_read_tokens=c, output_tokens=o)
    return to_nanos(calc_price(usage, model, provider_id=provider,
                               genai_request_timestamp=when.replace(tzinfo=UTC)).total_price)


def test_record_usage_prices_and_stores_one_event(sqlite_engine):
    recorded = tokenusage.record_usage(
        sqlite_engine, user_id="u-42", model="gpt-4o-2024-08-06", provider="openai",
        input_tokens=3_200, output_tokens=410, cached_input_tokens=1_024,
        request_id="chatcmpl-1", occurred_at=WHEN)
    expected = direct("gpt-4o-2024-08-06", "openai", WHEN, 3_200, 410, 1_024)
    assert recorded == recording.RecordedEvent("chatcmpl-1", True, expected, "computed")
    again = tokenusage.record_usage(
        sqlite_engine, user_id="u-42", model="gpt-4o-2024-08-06", provider="openai",
        input_tokens=3_200, output_tokens=410, cached_input_tokens=1_024,
        request_id="chatcmpl-1", occurred_at=WHEN)
    assert again.inserted is False
    stored = events(sqlite_engine)
    assert len(stored) == 1
    event = stored[0]
    assert (event["user_id"], event["occurred_at"], event["provider"], event["model"]) == (
        "u-42", WHEN, "openai", "gpt-4o-2024-08-06")
    assert (event["input_tokens"], event["output_tokens"], event["cached_input_tokens"]) == (
        3_200, 410, 1_024)
    assert (event["cost_nanos"], event["cost_source"]) == (expected, "computed")
    with sqlite_engine.connect() as connection:
        placeholder = connection.execute(select(users)).one()
    assert (placeholder.user_id, placeholder.is_placeholder) == ("u-42", True)
    assert rollups.pending_events(sqlite_engine) == 1  # the dashboard refreshes on its own


def test_record_usage_defaults_and_given_costs(sqlite_engine):
    url = sqlite_engine.url.render_as_string(hide_password=False)
    before = datetime.now(UTC).replace(tzinfo=None)
    first = tokenusage.record_usage(url, user_id="u1", model="openai/gpt-4o-mini",
                                    input_tokens=10, output_tokens=5)
    after = datetime.now(UTC).replace(tzinfo=None)
    assert uuid.UUID(first.request_id).version == 4
    second = tokenusage.record_usage(url, user_id="u1", model="claude-3-5-haiku",
                                     input_tokens=10, output_tokens=5, cost_usd="0.0000015",
                                     occurred_at=datetime(2026, 11, 3, 9, 0,
                                                          tzinfo=timezone(timedelta(hours=3))))
    third = tokenusage.record_usage(url, user_id="u1", model="acme-local", input_tokens=10,
                                    output_tokens=5, cost_usd=Decimal("0.25"))
    fourth = tokenusage.record_usage(url, user_id="u1", model="acme-local", input_tokens=10,
                                     output_tokens=5)
    assert (second.cost_nanos, second.cost_source) == (1_500, "source")
    assert (third.cost_nanos, third.cost_source) == (250_000_000, "source")
    assert (fourth.cost_nanos, fourth.cost_source) == (None, "unpriced")
    stored = events(sqlite_engine)
    assert len(stored) == 4 and len({e["request_id"] for e in stored}) == 4
    assert before - timedelta(seconds=1) <= stored[0]["occurred_at"] <= after
    assert stored[0]["cost_nanos"] == direct("gpt-4o-mini", "openai", stored[0]["occurred_at"],
                                             10, 5, 0)
    assert stored[1]["occurred_at"] == datetime(2026, 11, 3, 6, 0)


def test_record_usage_uses_price_overrides(sqlite_engine, monkeypatch):
    monkeypatch.setattr(recording, "PRICE_BOOK_TTL", 0.0)
    set_override(sqlite_engine, "acme", "acme-local", date(2026, 1, 1), input_usd="1",
                 output_usd="2")
    recorded = tokenusage.record_usage(sqlite_engine, user_id="u1", provider="acme",
                                       model="acme-local", input_tokens=1_000,
                                       output_tokens=500, occurred_at=WHEN)
    assert (recorded.cost_nanos, recorded.cost_source) == (1_000 * 1_000 + 500 * 2_000,
                                                           "computed")


@pytest.mark.parametrize(("changes", "error", "message"), [
    ({"cached_input_tokens": 11}, ValueError, "cached_input_tokens: more than input_tokens"),
    ({"input_tokens": -1}, ValueError, "input_tokens: negative"),
    ({"output_tokens": "many"}, ValueError, "output_tokens: not a whole number"),
    ({"user_id": ""}, ValueError, "user_id: empty"),
    ({"model": ""}, ValueError, "model: empty"),
    ({"cost_usd": 0.01}, TypeError, "float"),
    ({"cost_usd": "-1"}, ValueError, "cost_usd: negative"),
    ({"occurred_at": datetime(2099, 1, 1)}, ValueError, "occurred_at: in the future"),
])
def test_record_usage_refuses_bad_values(sqlite_engine, changes, error, message):
    values = {"user_id": "u1", "model": "gpt-4o", "input_tokens": 10, "output_tokens": 5}
    with pytest.raises(error, match=message):
        tokenusage.record_usage(sqlite_engine, **(values | changes))
    assert events(sqlite_engine) == []


CHAT_COMPLETION = {
    "id": "chatcmpl-AbC123",
    "object": "chat.completion",
    "created": 1_793_000_000,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Привет!"}}],
    "usage": {"prompt_tokens": 1_523, "completion_tokens": 87, "total_tokens": 1_610,
              "prompt_tokens_details": {"cached_tokens": 1_280, "audio_tokens": 0},
              "completion_tokens_details": {"reasoning_tokens": 0}},
}


def test_record_openai_chat_completion_dict(sqlite_engine):
    recorded = tokenusage.record_openai_usage(sqlite_engine, "u7", CHAT_COMPLETION)
    created = datetime.fromtimestamp(1_793_000_000, UTC).replace(tzinfo=None)
    expected = direct("gpt-4o-mini-2024-07-18", "openai", created, 1_523, 87, 1_280)
    assert recorded == recording.RecordedEvent("chatcmpl-AbC123", True, expected, "computed")
    event = events(sqlite_engine)[0]
    assert (event["occurred_at"], event["input_tokens"], event["output_tokens"],
            event["cached_input_tokens"], event["provider"]) == (created, 1_523, 87, 1_280,
                                                                 "openai")
    assert not tokenusage.record_openai_usage(sqlite_engine, "u7", CHAT_COMPLETION).inserted
    assert len(events(sqlite_engine)) == 1


def test_record_openai_objects_and_responses_api(sqlite_engine):
    chat = SimpleNamespace(
        id="chatcmpl-obj", model="gpt-4o", created=None,
        usage=SimpleNamespace(prompt_tokens=900, completion_tokens=100,
                              prompt_tokens_details=None),
    )
    first = tokenusage.record_openai_usage(sqlite_engine, "u8", chat, occurred_at=WHEN)
    assert first.cost_nanos == direct("gpt-4o", "openai", WHEN, 900, 100, 0)

    response = SimpleNamespace(
        id="resp_67ccd2", object="response", created_at=1_793_000_100.5, model="gpt-4.1-mini",
        usage=SimpleNamespace(input_tokens=5_000, output_tokens=250,
                              input_tokens_details=SimpleNamespace(cached_tokens=4_096),
                              output_tokens_details=SimpleNamespace(reasoning_tokens=0)),
    )
    second = tokenusage.record_openai_usage(sqlite_engine, "u8", response)
    created = datetime.fromtimestamp(1_793_000_100.5, UTC).replace(tzinfo=None)
    assert second.cost_nanos == direct("gpt-4.1-mini", "openai", created, 5_000, 250, 4_096)
    responses_dict = {"id": "resp_dict", "model": "gpt-4.1-mini",
                      "usage": {"input_tokens": 10, "output_tokens": 2,
                                "input_tokens_details": {"cached_tokens": 0}}}
    third = tokenusage.record_openai_usage(sqlite_engine, "u8", responses_dict,
                                           provider="azure", cost_usd="0.001")
    stored = events(sqlite_engine)
    assert [(e["request_id"], e["provider"], e["cached_input_tokens"]) for e in stored] == [
        ("chatcmpl-obj", "openai", 0), ("resp_67ccd2", "openai", 4_096),
        ("resp_dict", "azure", 0)]
    assert (third.cost_nanos, stored[1]["occurred_at"]) == (1_000_000, created)

    with pytest.raises(ValueError, match="no usage"):
        tokenusage.record_openai_usage(sqlite_engine, "u8", {"id": "x", "model": "gpt-4o"})
    no_id = tokenusage.record_openai_usage(sqlite_engine, "u8", {
        "model": "gpt-4o", "usage": {"prompt_tokens": 1, "completion_tokens": 1}})
    assert uuid.UUID(no_id.request_id).version == 4


def test_import_tokenusage_stays_cheap():
    code = ("import sys, tokenusage; "
            "assert 'streamlit' not in sys.modules; "
            "assert 'tokenusage.recording' not in sys.modules; "
            "from tokenusage import record_usage, record_openai_usage; "
            "assert 'streamlit' not in sys.modules; "
            "print(record_usage.__module__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).resolve().parent.parent)
    assert done.stdout.strip() == "tokenusage.recording"
