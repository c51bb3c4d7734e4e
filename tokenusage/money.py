"""Money as integer nano-dollars (1 USD = 10**9) and its display."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

NANOS_PER_USD = 1_000_000_000
CENT_NANOS = NANOS_PER_USD // 100


def to_nanos(usd: Decimal | str | int) -> int:
    """Exact conversion of a USD amount to nano-dollars, rounding half up at the 9th decimal."""
    if isinstance(usd, float):
        raise TypeError("money must not be a float; pass a Decimal or a string")
    try:
        value = Decimal(str(usd).strip())
    except InvalidOperation as exc:
        raise ValueError(f"not an amount: {usd!r}") from exc
    if not value.is_finite():
        raise ValueError(f"not an amount: {usd!r}")
    return int((value * NANOS_PER_USD).to_integral_value(ROUND_HALF_UP))


def to_decimal(nanos: int) -> Decimal:
    return Decimal(int(nanos)).scaleb(-9)


def exact_usd(nanos: int) -> str:
    """The exact amount as a plain decimal string, e.g. '0.000001500'."""
    return f"{to_decimal(nanos):.9f}"


def format_usd(nanos: int) -> str:
    """Human display: '$1,234.57'; sub-cent amounts keep two significant digits ('$0.0042')."""
    nanos = int(nanos)
    sign = "-" if nanos < 0 else ""
    magnitude = abs(nanos)
    if magnitude == 0:
        return "$0.00"
    value = to_decimal(magnitude)
    if magnitude < CENT_NANOS:
        digits = min(-value.adjusted() + 1, 9)
        rounded = value.quantize(Decimal(1).scaleb(-digits), ROUND_HALF_UP)
        if rounded < Decimal("0.01"):
            return f"{sign}${rounded:f}"
    rounded = value.quantize(Decimal("0.01"), ROUND_HALF_UP)
    return f"{sign}${rounded:,.2f}"
