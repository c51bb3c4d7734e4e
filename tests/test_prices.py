"""Prices: genai-prices lookups against calc_price, local overrides, unpriced events, reprice."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from genai_prices import Usage, calc_price
from sqlalchemy import select

from tokenusage import prices, queries, rollups
from tokenusage.cli import main
from tokenusage.importer import import_file
from tokenusage.money import to_nanos
from tokenusage.periods import DayRange
from tokenusage.prices import PriceBook, UnitPrices, set_override
from tokenusage.schema import price_overrides, usage_events

TZ = "America/New_York"


def direct(model: str, provider: str | None, when: datetime, input_tokens: int,
           output_tokens: int, cached: int) -> int:
    """The cost from genai-prices' own calc_price, in nano-dollars."""
    usage = Usage(input_tokens=input_tokens, cache_read_tokens=cached,
                  output_tokens=output_tokens)
    result = calc_price(usage, model, provider_id=provider,
                        genai_request_timestamp=when.replace(tzinfo=UTC))
    return to_nanos(result.total_price)


# (event provider, event model, genai provider, genai model, time, input, output, cached)
CASES = [
    ("openai", "gpt-4o", "openai", "gpt-4o", datetime(2025, 3, 1, 9), 12_345, 678, 2_048),
    ("", "openai/gpt-4o", "openai", "gpt-4o", datetime(2025, 3, 1, 9), 12_345, 678, 2_048),
    ("OpenAI", "gpt-4o-2024-08-06", "openai", "gpt-4o-2024-08-06", datetime(2025, 3, 1),
     1_000, 1_000, 0),
    ("", "gpt-4o-2024-05-13", None, "gpt-4o-2024-05-13", datetime(2025, 3, 1), 50_000, 10, 0),
    ("openai", "o3", "openai", "o3", datetime(2025, 6, 9, 23, 59), 100_000, 20_000, 10_000),
    ("openai", "o3", "openai", "o3", datetime(2025, 6, 10, 0, 1), 100_000, 20_000, 10_000),
    ("anthropic", "claude-sonnet-4-6", "anthropic", "claude-sonnet-4-6",
     datetime(2026, 1, 10), 250_000, 4_000, 100_000),
    ("anthropic", "claude-sonnet-4-6", "anthropic", "claude-sonnet-4-6",
     datetime(2026, 4, 1), 250_000, 4_000, 100_000),
    ("deepseek", "deepseek-v4-flash", "deepseek", "deepseek-v4-flash",
     datetime(2026, 9, 20, 2, 30), 40_000, 3_000, 1_000),
    ("deepseek", "deepseek-v4-flash", "deepseek", "deepseek-v4-flash",
     datetime(2026, 9, 20, 12, 0), 40_000, 3_000, 1_000),
    ("google", "gemini-2.5-flash", "google", "gemini-2.5-flash", datetime(2025, 8, 1),
     9_000, 700, 300),
    ("mistral", "mistral-small-latest", "mistral", "mistral-small-latest",
     datetime(2026, 3, 15), 9_000, 700, 0),
    ("mistral", "mistral-small-latest", "mistral", "mistral-small-latest",
     datetime(2026, 3, 16), 9_000, 700, 0),
    ("my-proxy", "gpt-4o-mini", None, "gpt-4o-mini", datetime(2025, 1, 1), 3, 5, 1),
]


@pytest.mark.parametrize(("provider", "model", "g_provider", "g_model", "when", "i", "o", "c"),
                         CASES)
def test_cost_matches_calc_price(provider, model, g_provider, g_model, when, i, o, c):
    expected = direct(g_model, g_provider, when, i, o, c)
    assert expected > 0
    assert PriceBook().cost_nanos(provider, model, when, i, o, c) == expected


def test_prices_change_with_the_date_of_the_event():
    book = PriceBook()
    before, after = datetime(2025, 6, 9, 12), datetime(2025, 6, 11, 12)
    assert book.cost_nanos("openai", "o3", before, 1_000_000, 0, 0) == 10 * 10**9
    assert book.cost_nanos("openai", "o3", after, 1_000_000, 0, 0) == 2 * 10**9
    off_peak = book.cost_nanos("deepseek", "deepseek-v4-flash", datetime(2026, 9, 20, 2), 10**6,
                               0, 0)
    peak = book.cost_nanos("deepseek", "deepseek-v4-flash", datetime(2026, 9, 20, 12), 10**6, 0,
                           0)
    assert off_peak != peak


def test_many_random_events_match_calc_price():
    rng = random.Random(5)
    models = [("openai", "gpt-4o"), ("openai", "o3"), ("anthropic", "claude-sonnet-4-6"),
              ("deepseek", "deepseek-v4-flash"), ("google", "gemini-2.5-pro"),
              ("mistral", "mistral-small-latest"), ("openai", "gpt-4.1-mini")]
    book = PriceBook()
    start = datetime(2025, 1, 1)
    for _ in range(1_500):
        provider, model = rng.choice(models)
        when = start + timedelta(seconds=rng.randrange(60 * 60 * 24 * 640))
        i = rng.randrange(0, 400_000)
        c = rng.randrange(0, i + 1)
        o = rng.randrange(0, 30_000)
        assert book.cost_nanos(provider, model, when, i, o, c) == direct(model, provider, when,
                                                                         i, o, c)


def test_unknown_models_are_unpriced():
    book = PriceBook()
    assert book.cost_nanos("acme", "llama-3.3-70b-local", datetime(2026, 1, 1), 10, 10, 0) is None
    assert book.cost_nanos("", "", datetime(2026, 1, 1), 10, 10, 0) is None
    assert prices.unit_prices("acme", "nothing-like-this", datetime(2026, 1, 1)) is None


def test_lookups_are_cached_per_model_and_day(monkeypatch):
    prices.clear_cache()
    calls = []
    real = prices.calc_price

    def counting(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(prices, "calc_price", counting)
    book = PriceBook()
    for n in range(3_000):
        when = datetime(2025, 5, 1 + n % 3, n % 24)
        book.cost_nanos("openai", "gpt-4o-2024-08-06", when, 1_000 + n, 100, n % 500)
    assert len(calls) <= 1 + 3 * 15  # a few lookups per model and day, not per event

    calls.clear()
    for n in range(500):  # tiered: flat prices per tier, both tiers used
        book.cost_nanos("anthropic", "claude-sonnet-4-6", datetime(2026, 1, 5), 1_000 + n * 997,
                        10, 0)
    assert len(calls) <= 1 + 2 * 15

    calls.clear()
    for n in range(50):  # time-of-day prices: one exact calculation per event
        book.cost_nanos("deepseek", "deepseek-v4-flash", datetime(2026, 9, 20, n % 24), 1_000, 10,
                        0)
    assert 50 <= len(calls) <= 50 + 15
    prices.clear_cache()


def test_unit_prices_for_demo_data():
    when = datetime(2026, 5, 15, tzinfo=UTC)
    unit = prices.unit_prices("openai", "gpt-4o-mini", when)
    assert unit == UnitPrices(
        input=direct("gpt-4o-mini", "openai", when, 10**6, 0, 0),
        cached_input=direct("gpt-4o-mini", "openai", when, 10**6, 0, 10**6),
        output=direct("gpt-4o-mini", "openai", when, 0, 10**6, 0),
    )
    assert unit.cost_nanos(1, 0, 0) == 150
    assert UnitPrices(500_000, 0, 0).cost_nanos(1, 0, 0) == 1  # half a nano-dollar rounds up
    assert UnitPrices(499_999, 0, 0).cost_nanos(1, 0, 0) == 0


def test_normalize_spellings():
    assert prices.normalize("", "openai/gpt-4o") == ("openai", "gpt-4o")
    assert prices.normalize("OpenAI", " OpenAI/GPT-4o ") == ("openai", "gpt-4o")
    assert prices.normalize("openrouter", "openai/gpt-4o") == ("openrouter", "openai/gpt-4o")
    assert prices.normalize(None, "gpt-4o") == ("", "gpt-4o")


def test_overrides_apply_from_their_effective_time(sqlite_engine):
    set_override(sqlite_engine, "acme", "Llama-Local", date(2026, 1, 1),
                 input_usd="0.50", output_usd="1.50", cached_input_usd="0.25")
    set_override(sqlite_engine, "acme", "llama-local", datetime(2026, 6, 1, 12),
                 input_usd=Decimal("0.40"), output_usd="1.20")
    set_override(sqlite_engine, "openai", "gpt-4o", datetime(2026, 10, 1, 2, tzinfo=UTC),
                 input_usd="1", output_usd="4", cached_input_usd="0.5")
    book = PriceBook.load(sqlite_engine)
    usage = (1_000_000, 100_000, 200_000)
    assert book.cost_nanos("acme", "llama-local", datetime(2025, 12, 31, 23, 59), *usage) is None
    assert book.cost_nanos("acme", "llama-local", datetime(2026, 1, 1), *usage) == (
        800_000 * 500 + 200_000 * 250 + 100_000 * 1_500)
    assert book.cost_nanos("acme", "llama-local", datetime(2026, 6, 1, 11, 59), *usage) == (
        800_000 * 500 + 200_000 * 250 + 100_000 * 1_500)
    assert book.cost_nanos("acme", "llama-local", datetime(2026, 6, 1, 12), *usage) == (
        1_000_000 * 400 + 100_000 * 1_200)
    assert book.cost_nanos("", "acme/llama-local", datetime(2026, 7, 1), *usage) == (
        1_000_000 * 400 + 100_000 * 1_200)
    assert book.cost_nanos("", "llama-local", datetime(2026, 7, 1), *usage) == (
        1_000_000 * 400 + 100_000 * 1_200)
    assert book.cost_nanos("other", "llama-local", datetime(2026, 7, 1), *usage) is None

    before, after = datetime(2026, 10, 1, 1, 59), datetime(2026, 10, 1, 2, 0)
    assert book.cost_nanos("openai", "gpt-4o", before, *usage) == direct(
        "gpt-4o", "openai", before, 1_000_000, 100_000, 200_000)
    assert book.cost_nanos("openai", "gpt-4o", after, *usage) == (
        800_000 * 1_000 + 200_000 * 500 + 100_000 * 4_000)
    assert book.cost_nanos("openai", "gpt-4o-2024-08-06", after, *usage) == direct(
        "gpt-4o-2024-08-06", "openai", after, 1_000_000, 100_000, 200_000)
    assert book.info("openai", "gpt-4o", after).source == "override"
    assert book.info("openai", "gpt-4o", before).source == "genai-prices"

    replaced = set_override(sqlite_engine, "acme", "llama-local", date(2026, 1, 1),
                            input_usd="0.6", output_usd="1.8")
    listed = prices.list_overrides(sqlite_engine)
    assert [(o.provider, o.model, o.effective_from, o.prices.input) for o in listed] == [
        ("acme", "llama-local", datetime(2026, 1, 1), 600_000_000),
        ("acme", "llama-local", datetime(2026, 6, 1, 12), 400_000_000),
        ("openai", "gpt-4o", datetime(2026, 10, 1, 2), 1_000_000_000),
    ]
    assert listed[0].id == replaced.id
    assert listed[1].prices.cached_input == 400_000_000
    assert prices.delete_override(sqlite_engine, replaced.id)
    assert not prices.delete_override(sqlite_engine, replaced.id)
    with pytest.raises(ValueError, match="negative"):
        set_override(sqlite_engine, "acme", "x", date(2026, 1, 1), input_usd="-1",
                     output_usd="1")
    with pytest.raises(TypeError):
        set_override(sqlite_engine, "acme", "x", date(2026, 1, 1), input_usd=0.5,
                     output_usd="1")
    with pytest.raises(ValueError, match="not a decimal"):
        set_override(sqlite_engine, "acme", "x", date(2026, 1, 1), input_usd="cheap",
                     output_usd="1")


def _write_events(path, events) -> None:
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")


def _costs(engine) -> dict[str, tuple[int | None, str]]:
    with engine.connect() as connection:
        rows = connection.execute(select(usage_events.c.request_id, usage_events.c.cost_nanos,
                                         usage_events.c.cost_source))
        return {r.request_id: (r.cost_nanos, r.cost_source) for r in rows}


def _totals(engine):
    with queries.snapshot(engine) as connection:
        return queries.period_totals(connection, DayRange(None, None))


def test_unpriced_events_and_reprice(engine, tmp_path):
    base = {"user_id": "u1", "provider": "acme", "model": "llama-local", "input_tokens": 2_000,
            "output_tokens": 500, "cached_input_tokens": 1_000}
    events = [
        base | {"request_id": "local-1", "occurred_at": "2026-10-01T12:00:00Z"},
        base | {"request_id": "local-2", "occurred_at": "2026-10-20T23:30:00-04:00",
                "user_id": "u2"},
        base | {"request_id": "local-paid", "occurred_at": "2026-10-02T12:00:00Z",
                "cost_usd": "0.0042"},
        base | {"request_id": "gpt-1", "occurred_at": "2026-10-03T12:00:00Z",
                "provider": "openai", "model": "gpt-4o-2024-08-06"},
        base | {"request_id": "gpt-paid", "occurred_at": "2026-10-03T13:00:00Z",
                "provider": "openai", "model": "gpt-4o", "cost_usd": "0.01", "user_id": "u2"},
        base | {"request_id": "gpt-2", "occurred_at": "2026-10-04T12:00:00Z",
                "provider": "", "model": "openai/gpt-4o"},
    ]
    path = tmp_path / "events.jsonl"
    _write_events(path, events)
    result = import_file(engine, "events", path, timezone=TZ)
    assert result.unpriced_models == {("acme", "llama-local"): 2}
    assert "no price known for: acme/llama-local (2)" in result.summary()

    gpt = {rid: direct("gpt-4o", "openai", datetime.fromisoformat(when), 2_000, 500, 1_000)
           for rid, when in (("gpt-1", "2026-10-03T12:00:00"), ("gpt-2", "2026-10-04T12:00:00"))}
    assert _costs(engine) == {
        "local-1": (None, "unpriced"), "local-2": (None, "unpriced"),
        "local-paid": (4_200_000, "source"), "gpt-1": (gpt["gpt-1"], "computed"),
        "gpt-paid": (10_000_000, "source"), "gpt-2": (gpt["gpt-2"], "computed"),
    }
    totals = _totals(engine)
    assert (totals.unpriced, totals.events) == (2, 6)
    assert totals.spend_nanos == 14_200_000 + sum(gpt.values())
    assert rollups.verify(engine, TZ).ok

    set_override(engine, "acme", "llama-local", date(2026, 10, 15), input_usd="2",
                 output_usd="6", cached_input_usd="1")
    repriced = prices.reprice(engine, TZ, batch_size=2)
    assert (repriced.checked, repriced.changed, repriced.computed, repriced.unpriced) == (
        4, 1, 3, 1)
    local_2 = 1_000 * 2_000 + 1_000 * 1_000 + 500 * 6_000
    assert _costs(engine)["local-2"] == (local_2, "computed")
    assert _costs(engine)["local-1"] == (None, "unpriced")
    assert rollups.verify(engine, TZ).ok
    totals = _totals(engine)
    assert (totals.unpriced, totals.events) == (1, 6)
    assert totals.spend_nanos == 14_200_000 + sum(gpt.values()) + local_2
    with queries.snapshot(engine) as connection:
        october_20 = queries.period_totals(connection, DayRange(date(2026, 10, 20),
                                                                date(2026, 10, 20)))
    assert (october_20.spend_nanos, october_20.unpriced) == (local_2, 0)

    set_override(engine, "acme", "llama-local", date(2026, 9, 1), input_usd="1",
                 output_usd="3")
    set_override(engine, "openai", "gpt-4o", date(2026, 10, 4), input_usd="1",
                 output_usd="2", cached_input_usd="0")
    repriced = prices.reprice(engine, TZ)
    assert (repriced.checked, repriced.changed, repriced.unpriced) == (4, 2, 0)
    costs = _costs(engine)
    assert costs["local-1"] == (2_000 * 1_000 + 500 * 3_000, "computed")
    assert costs["gpt-2"] == (1_000 * 1_000 + 500 * 2_000, "computed")
    assert costs["gpt-1"] == (gpt["gpt-1"], "computed")
    assert costs["local-paid"] == (4_200_000, "source")
    assert costs["gpt-paid"] == (10_000_000, "source")
    assert rollups.verify(engine, TZ).ok
    totals = _totals(engine)
    assert totals.unpriced == 0
    assert totals.spend_nanos == sum(cost for cost, _ in costs.values())

    again = prices.reprice(engine, TZ)
    assert (again.checked, again.changed) == (4, 0)


def test_prices_and_reprice_commands(sqlite_engine, capsys):
    url = sqlite_engine.url.render_as_string(hide_password=False)
    assert main(["--db", url, "prices"]) == 0
    assert "no price overrides" in capsys.readouterr().out
    assert main(["--db", url, "prices", "set", "acme", "llama-local", "--from", "2026-01-01",
                 "--input", "0.9", "--output", "1.10", "--cached-input", "0.075"]) == 0
    assert "input $0.90, cached input $0.075, output $1.10" in capsys.readouterr().out
    assert main(["--db", url, "prices", "list"]) == 0
    out = capsys.readouterr().out
    assert "acme      llama-local  2026-01-01 00:00  0.90   0.075         1.10" in out
    with sqlite_engine.connect() as connection:
        stored = connection.execute(select(price_overrides)).one()
    assert (stored.input_nanos_per_mtok, stored.cached_input_nanos_per_mtok,
            stored.output_nanos_per_mtok) == (900_000_000, 75_000_000, 1_100_000_000)

    assert main(["--db", url, "prices", "show", "openai/gpt-4o-2024-08-06",
                 "--at", "2025-03-01"]) == 0
    out = capsys.readouterr().out
    assert "genai-prices: openai/gpt-4o: input $2.50, cached input $1.25, output $10.00" in out
    assert "applies: genai-prices" in out
    assert main(["--db", url, "prices", "show", "gemini-2.5-pro", "--at", "2025-08-01"]) == 0
    quote = prices.genai_quote("", "gemini-2.5-pro", date(2025, 8, 1))
    tier = quote.regions[1]
    assert f"above {quote.tiers[0]:,} input tokens: input ${prices.format_per_mtok(tier.input)}" \
        in capsys.readouterr().out
    assert main(["--db", url, "prices", "show", "llama-local", "--provider", "acme"]) == 0
    out = capsys.readouterr().out
    assert "genai-prices: no price known" in out and "applies: override" in out

    assert main(["--db", url, "prices", "set", "acme", "x", "--from", "soon", "--input", "1",
                 "--output", "1"]) == 2
    assert "--from: not an ISO 8601 timestamp" in capsys.readouterr().err
    assert main(["--db", url, "prices", "set", "acme", "x", "--from", "2026-01-01", "--input",
                 "one", "--output", "1"]) == 2
    assert "input: not a decimal amount" in capsys.readouterr().err

    assert main(["--db", url, "reprice"]) == 0
    assert "repriced 0 events" in capsys.readouterr().out
    assert main(["--db", url, "prices", "delete", str(stored.id)]) == 0
    assert main(["--db", url, "prices", "delete", str(stored.id)]) == 2
