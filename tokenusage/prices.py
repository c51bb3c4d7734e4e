"""Token prices from the `genai-prices` package, as nano-dollars per token."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache

from genai_prices import Usage, calc_price

from tokenusage.money import to_nanos

MILLION = 1_000_000


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


@lru_cache(maxsize=1024)
def unit_prices(provider: str, model: str, day: datetime) -> UnitPrices | None:
    """Prices of `model` valid at `day`, or None when the package knows no price for it."""
    when = day if day.tzinfo else day.replace(tzinfo=UTC)
    try:
        def price(**usage: int) -> Decimal:
            return calc_price(Usage(**usage), model, provider_id=provider or None,
                              genai_request_timestamp=when).total_price
        uncached = price(input_tokens=MILLION)
        cached = price(input_tokens=MILLION, cache_read_tokens=MILLION)
        output = price(output_tokens=MILLION)
    except LookupError:
        return None
    return UnitPrices(to_nanos(uncached), to_nanos(cached), to_nanos(output))
