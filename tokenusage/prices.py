"""Token prices: local overrides first, then the `genai-prices` package, in nano-dollars.

`PriceBook` prices one event from its provider, model, time and token counts. Prices
from genai-prices are looked up once per (provider, model, UTC day) and applied as
integer unit prices per price tier, after checking that they reproduce `calc_price`
exactly; models with time-of-day or per-request prices are priced one event at a time
with `calc_price`.
Local overrides (table `price_overrides`) win for events at or after their effective
time. `reprice` recomputes stored computed and unpriced costs after a price change.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from functools import lru_cache

from genai_prices import Usage, calc_price
from genai_prices.types import PriceCalculation, TieredPrices, TimeOfDateConstraint
from sqlalchemy import Connection, Engine, bindparam, delete, insert, select, update

from tokenusage import rollups
from tokenusage.money import NANOS_PER_USD, to_nanos
from tokenusage.schema import price_overrides, usage_events

MILLION = 1_000_000
REPRICE_BATCH_SIZE = 5_000
REPRICED_SOURCES = ("computed", "unpriced")
_PROBE = 1_000


@dataclass(frozen=True)
class UnitPrices:
    """Nano-dollars per million tokens: input (uncached), cached input, output."""

    input: int
    cached_input: int
    output: int

    def cost_nanos(self, input_tokens: int, output_tokens: int, cached_input_tokens: int) -> int:
        """Cost of one call; cached input tokens are part of the input tokens."""
        uncached = input_tokens - cached_input_tokens
        total = uncached * self.input + cached_input_tokens * self.cached_input
        total += output_tokens * self.output
        return (total + MILLION // 2) // MILLION


def normalize(provider: str | None, model: str | None) -> tuple[str, str]:
    """(provider, model) as matched against prices: lower case, a `provider/` prefix split off.

    `("", "openai/gpt-4o")` and `("OpenAI", "openai/gpt-4o")` both become `("openai", "gpt-4o")`;
    `("openrouter", "openai/gpt-4o")` stays as it is (the prefix is not the provider).
    """
    p = (provider or "").strip().lower()
    m = (model or "").strip().lower()
    prefix, slash, rest = m.partition("/")
    if slash and rest and (not p or prefix == p):
        p, m = prefix, rest
    return p, m


def as_utc_naive(moment: datetime) -> datetime:
    """A datetime as naive UTC, the way timestamps are stored (naive input means UTC)."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


# --- genai-prices ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GenaiQuote:
    """genai-prices' prices of one model on one UTC day, as flat prices per tier.

    A tiered model's price depends on the call's input tokens: `tiers` holds the tier
    starts and `regions` the flat unit prices of each tier (the first is the base
    price). `per_event` is true for time-of-day prices, and a region is None where flat
    prices would not be exact (per-request fees, sub-nano-dollar unit prices); those
    calls are priced with `calc_price` itself.
    """

    provider_id: str | None
    model_ref: str
    model_id: str
    provider_name: str
    tiers: tuple[int, ...]
    regions: tuple[UnitPrices | None, ...]
    per_event: bool
    base: UnitPrices

    @property
    def prices(self) -> UnitPrices:
        return self.regions[0] or self.base

    def region_prices(self, input_tokens: int) -> UnitPrices | None:
        """Flat prices for a call with `input_tokens`, or None to price it with calc_price."""
        if self.per_event:
            return None
        return self.regions[bisect_left(self.tiers, input_tokens)]


def _calc(ref: tuple[str | None, str], when: datetime, input_tokens: int = 0,
          output_tokens: int = 0, cached_input_tokens: int = 0) -> PriceCalculation:
    usage = Usage(input_tokens=input_tokens, cache_read_tokens=cached_input_tokens,
                  output_tokens=output_tokens)
    return calc_price(usage, ref[1], provider_id=ref[0], genai_request_timestamp=_aware(when))


@lru_cache(maxsize=4096)
def resolve_model(provider: str, model: str) -> tuple[str | None, str] | None:
    """The (provider_id, model_ref) under which genai-prices knows a model, or None.

    Tries the normalized provider and model, then the model alone (for providers the
    package does not know, e.g. an internal proxy), then the model as written.
    """
    p, m = normalize(provider, model)
    candidates: list[tuple[str | None, str]] = [(p or None, m)]
    if p:
        candidates.append((None, m))
    written = (model or "").strip().lower()
    if written and written != m:
        candidates.append((None, written))
    for ref in candidates:
        if not ref[1]:
            continue
        try:
            _calc(ref, datetime(2025, 1, 1, tzinfo=UTC))
        except LookupError:
            continue
        return ref
    return None


def _per_mtok_nanos(usd_per_token: Decimal) -> int | None:
    nanos = usd_per_token * MILLION * NANOS_PER_USD
    return int(nanos) if nanos == nanos.to_integral_value() else None


def _region(ref: tuple[str | None, str], when: datetime, low: int, high: int,
            ) -> UnitPrices | None:
    """Flat unit prices for calls with low <= input tokens <= high, if exactly right there."""
    if high <= low:
        return None

    def total(i: int, o: int = 0, c: int = 0) -> Decimal:
        return _calc(ref, when, i, o, c).total_price

    at_low, at_high = total(low), total(high)
    per_input = (at_high - at_low) / (high - low)
    fee = at_low - low * per_input
    if fee:
        return None
    per_cached = total(high, 0, high) / high
    per_output = (total(low, _PROBE) - at_low) / _PROBE
    nanos = [_per_mtok_nanos(value) for value in (per_input, per_cached, per_output)]
    if any(value is None for value in nanos):
        return None
    prices = UnitPrices(*nanos)
    middle = low + (high - low) // 2
    checks = ((low, 0, 0), (high, 0, 0), (high, 7_891, high // 3), (middle, 23_456, middle),
              (middle, 1, middle // 7))
    if all(to_nanos(_calc(ref, when, i, o, c).total_price) == prices.cost_nanos(i, o, c)
           for i, o, c in checks):
        return prices
    return None


@lru_cache(maxsize=65_536)
def genai_quote(provider: str, model: str, day: date) -> GenaiQuote | None:
    """genai-prices' prices of `model` on UTC `day`, or None when the package has no price."""
    ref = resolve_model(provider, model)
    if ref is None:
        return None
    when = datetime.combine(day, time(), UTC)
    zero = _calc(ref, when)
    tiers = sorted({tier.start for value in vars(zero.model_price).values()
                    if isinstance(value, TieredPrices) for tier in value.tiers})
    per_event = isinstance(zero.model.prices, list) and any(
        isinstance(c.constraint, TimeOfDateConstraint) for c in zero.model.prices)
    bounds = [0, *(start + 1 for start in tiers)]
    regions = tuple(
        None if per_event else _region(ref, when, low, tiers[k] if k < len(tiers)
                                       else max(low, _PROBE) * 1_000)
        for k, low in enumerate(bounds)
    )
    base = regions[0] or UnitPrices(*(
        to_nanos((_calc(ref, when, **usage).total_price - zero.total_price) * (MILLION // _PROBE))
        for usage in ({"input_tokens": _PROBE},
                      {"input_tokens": _PROBE, "cached_input_tokens": _PROBE},
                      {"output_tokens": _PROBE})
    ))
    return GenaiQuote(ref[0], ref[1], zero.model.id, zero.provider.id, tuple(tiers), regions,
                      per_event, base)


def genai_cost_nanos(quote: GenaiQuote, when: datetime, input_tokens: int, output_tokens: int,
                     cached_input_tokens: int) -> int:
    """The cost of one event with genai-prices, exact for every kind of price."""
    flat = quote.region_prices(input_tokens)
    if flat is not None:
        return flat.cost_nanos(input_tokens, output_tokens, cached_input_tokens)
    calc = _calc((quote.provider_id, quote.model_ref), when, input_tokens, output_tokens,
                 cached_input_tokens)
    return to_nanos(calc.total_price)


def unit_prices(provider: str, model: str, day: datetime | date) -> UnitPrices | None:
    """Base prices of `model` valid on `day` (UTC) from genai-prices, or None when unknown."""
    if isinstance(day, datetime):
        day = as_utc_naive(day).date()
    quote = genai_quote(provider, model, day)
    return quote.prices if quote else None


def clear_cache() -> None:
    """Forget cached genai-prices lookups (after updating the package's price data)."""
    resolve_model.cache_clear()
    genai_quote.cache_clear()


# --- local overrides -------------------------------------------------------------------------


@dataclass(frozen=True)
class Override:
    """A local price for (provider, model) from `effective_from` (naive UTC) on."""

    id: int | None
    provider: str
    model: str
    effective_from: datetime
    prices: UnitPrices


def _override_from_row(row) -> Override:
    return Override(
        id=row.id, provider=row.provider, model=row.model, effective_from=row.effective_from,
        prices=UnitPrices(row.input_nanos_per_mtok, row.cached_input_nanos_per_mtok,
                          row.output_nanos_per_mtok),
    )


def list_overrides(source: Engine | Connection) -> list[Override]:
    """Every local price override, by provider, model and effective time."""
    t = price_overrides
    query = select(t).order_by(t.c.provider, t.c.model, t.c.effective_from, t.c.id)
    if isinstance(source, Connection):
        return [_override_from_row(r) for r in source.execute(query)]
    with source.connect() as connection:
        return [_override_from_row(r) for r in connection.execute(query)]


def usd_per_mtok_to_nanos(value: Decimal | str | int, name: str = "price") -> int:
    """A price in USD per million tokens as integer nano-dollars per million tokens."""
    if isinstance(value, float):
        raise TypeError(f"{name} must not be a float; pass a Decimal or a string")
    try:
        nanos = to_nanos(value)
    except ValueError as exc:
        raise ValueError(f"{name}: not a decimal amount: {value!r}") from exc
    if nanos < 0:
        raise ValueError(f"{name}: must not be negative")
    return nanos


def set_override(
    engine: Engine,
    provider: str,
    model: str,
    effective_from: datetime | date,
    *,
    input_usd: Decimal | str,
    output_usd: Decimal | str,
    cached_input_usd: Decimal | str | None = None,
) -> Override:
    """Store a local price (USD per million tokens); replaces one with the same key and time.

    Cached input tokens cost the input price when `cached_input_usd` is not given.
    """
    p, m = normalize(provider, model)
    if not m:
        raise ValueError("model must not be empty")
    if len(p) > 64 or len(m) > 128:
        raise ValueError("provider is limited to 64 characters and model to 128")
    if not isinstance(effective_from, datetime):
        effective_from = datetime.combine(effective_from, time())
    start = as_utc_naive(effective_from).replace(microsecond=0)
    input_nanos = usd_per_mtok_to_nanos(input_usd, "input")
    cached = (input_nanos if cached_input_usd is None
              else usd_per_mtok_to_nanos(cached_input_usd, "cached input"))
    prices = UnitPrices(input_nanos, cached, usd_per_mtok_to_nanos(output_usd, "output"))
    t = price_overrides
    same = (t.c.provider == p, t.c.model == m, t.c.effective_from == start)
    with engine.begin() as connection:
        connection.execute(delete(t).where(*same))
        connection.execute(insert(t).values(
            provider=p, model=m, effective_from=start,
            input_nanos_per_mtok=prices.input,
            cached_input_nanos_per_mtok=prices.cached_input,
            output_nanos_per_mtok=prices.output,
        ))
        new_id = connection.execute(select(t.c.id).where(*same)).scalar()
    return Override(new_id, p, m, start, prices)


def delete_override(engine: Engine, override_id: int) -> bool:
    """Remove one override by id; whether it existed."""
    with engine.begin() as connection:
        result = connection.execute(
            delete(price_overrides).where(price_overrides.c.id == override_id))
    return bool(result.rowcount)


# --- pricing events --------------------------------------------------------------------------


@dataclass(frozen=True)
class PriceInfo:
    """Which price applies to a model at a time, for display."""

    source: str | None  # "override", "genai-prices", or None when unpriced
    prices: UnitPrices | None
    override: Override | None
    genai: GenaiQuote | None


def _timeline(group: list[Override]) -> tuple[list[datetime], list[Override]]:
    ordered = sorted(group, key=lambda o: o.effective_from)
    return [o.effective_from for o in ordered], ordered


class PriceBook:
    """Prices events: local overrides at or after their effective time, then genai-prices.

    Overrides match on the normalized (provider, model); an event without a provider
    matches overrides of any provider for its model. Load one per import or reprice
    (`PriceBook.load`) so that it sees the current overrides.
    """

    def __init__(self, overrides: Iterable[Override] = ()) -> None:
        by_key: dict[tuple[str, str], list[Override]] = {}
        by_model: dict[str, list[Override]] = {}
        for item in overrides:
            key = normalize(item.provider, item.model)
            by_key.setdefault(key, []).append(item)
            by_model.setdefault(key[1], []).append(item)
        self._overrides = {key: _timeline(group) for key, group in by_key.items()}
        self._by_model = {key: _timeline(group) for key, group in by_model.items()}
        self._keys: dict[tuple[str, str], tuple[str, str]] = {}

    @classmethod
    def load(cls, source: Engine | Connection) -> PriceBook:
        return cls(list_overrides(source))

    def override(self, provider: str | None, model: str, when: datetime) -> Override | None:
        """The override in effect for `model` at `when` (naive UTC), if any."""
        raw = (provider or "", model or "")
        key = self._keys.get(raw)
        if key is None:
            key = self._keys[raw] = normalize(*raw)
        timeline = self._overrides.get(key) if key[0] else self._by_model.get(key[1])
        if not timeline:
            return None
        starts, group = timeline
        index = bisect_right(starts, as_utc_naive(when)) - 1
        return group[index] if index >= 0 else None

    def cost_nanos(self, provider: str | None, model: str, when: datetime, input_tokens: int,
                   output_tokens: int, cached_input_tokens: int = 0) -> int | None:
        """The cost of one event in nano-dollars, or None when no price is known."""
        when = as_utc_naive(when)
        if self._overrides:
            found = self.override(provider, model, when)
            if found is not None:
                return found.prices.cost_nanos(input_tokens, output_tokens, cached_input_tokens)
        quote = genai_quote(provider or "", model, when.date())
        if quote is None:
            return None
        return genai_cost_nanos(quote, when, input_tokens, output_tokens, cached_input_tokens)

    def info(self, provider: str | None, model: str, when: datetime) -> PriceInfo:
        """The price that applies to `model` at `when`, and where it comes from."""
        when = as_utc_naive(when)
        found = self.override(provider, model, when)
        quote = genai_quote(provider or "", model, when.date())
        if found is not None:
            return PriceInfo("override", found.prices, found, quote)
        if quote is not None:
            return PriceInfo("genai-prices", quote.prices, None, quote)
        return PriceInfo(None, None, None, None)


# --- repricing stored events -----------------------------------------------------------------


@dataclass
class RepriceResult:
    checked: int = 0
    changed: int = 0
    computed: int = 0
    unpriced: int = 0
    unpriced_models: dict[tuple[str, str], int] = field(default_factory=dict)
    refresh: rollups.RefreshResult | None = None


def reprice(
    engine: Engine,
    timezone: str,
    *,
    batch_size: int = REPRICE_BATCH_SIZE,
    book: PriceBook | None = None,
    on_batch: Callable[[RepriceResult], None] | None = None,
) -> RepriceResult:
    """Recompute the cost of every computed-price and unpriced event, then rebuild the rollups.

    Events whose cost came from the source are never touched. Works in batches by event id,
    each one transaction under the rollup lock; running it again after an interruption is safe.
    """
    book = book or PriceBook.load(engine)
    e = usage_events
    result = RepriceResult()
    change = (
        update(e)
        .where(e.c.id == bindparam("b_id"))
        .values(cost_nanos=bindparam("b_cost"), cost_source=bindparam("b_source"))
    )
    last_id = 0
    while True:
        with engine.begin() as connection:
            rollups.lock(connection)
            rows = connection.execute(
                select(e.c.id, e.c.provider, e.c.model, e.c.occurred_at, e.c.input_tokens,
                       e.c.output_tokens, e.c.cached_input_tokens, e.c.cost_nanos,
                       e.c.cost_source)
                .where(e.c.id > last_id, e.c.cost_source.in_(REPRICED_SOURCES))
                .order_by(e.c.id)
                .limit(batch_size)
            ).all()
            if not rows:
                break
            changes = []
            for row in rows:
                cost = book.cost_nanos(row.provider, row.model, row.occurred_at,
                                       row.input_tokens, row.output_tokens,
                                       row.cached_input_tokens)
                source = "unpriced" if cost is None else "computed"
                if cost is None:
                    result.unpriced += 1
                    key = (row.provider, row.model)
                    result.unpriced_models[key] = result.unpriced_models.get(key, 0) + 1
                else:
                    result.computed += 1
                if cost != row.cost_nanos or source != row.cost_source:
                    changes.append({"b_id": row.id, "b_cost": cost, "b_source": source})
            if changes:
                connection.execute(change, changes)
            last_id = rows[-1].id
        result.checked += len(rows)
        result.changed += len(changes)
        if on_batch:
            on_batch(result)
    result.refresh = rollups.refresh(engine, timezone, rebuild=True)
    return result


def format_per_mtok(nanos: int) -> str:
    """Nano-dollars per million tokens as USD with at least two decimals: '2.50', '0.075'."""
    whole, _, fraction = f"{Decimal(int(nanos)).scaleb(-9):f}".partition(".")
    fraction = fraction.rstrip("0").ljust(2, "0")
    return f"{whole}.{fraction}"
