"""Money: integer nano-dollars in, human and exact strings out."""

from decimal import Decimal

import pytest

from tokenusage.money import exact_usd, format_usd, to_nanos


@pytest.mark.parametrize(
    ("nanos", "shown"),
    [
        (0, "$0.00"),
        (1_500, "$0.0000015"),  # a very cheap call does not round to zero
        (1, "$0.000000001"),
        (4_249_999, "$0.0042"),
        (9_999_999, "$0.01"),
        (10_000_000, "$0.01"),
        (5_000_000, "$0.0050"),
        (1_234_565_000_000, "$1,234.57"),  # half up
        (1_234_564_999_999, "$1,234.56"),
        (12_345_678_900_000_000, "$12,345,678.90"),
        (-2_500_000_000, "-$2.50"),
    ],
)
def test_format_usd(nanos, shown):
    assert format_usd(nanos) == shown


def test_exact_and_parsing_round_trip():
    assert to_nanos("0.0016150000000000001") == 1_615_000
    assert to_nanos(Decimal("12.345678901")) == 12_345_678_901
    assert to_nanos("1e-9") == 1
    assert exact_usd(1_615_000) == "0.001615000"
    assert exact_usd(to_nanos("98765.432101234")) == "98765.432101234"
    with pytest.raises(TypeError):
        to_nanos(0.1)
    for bad in ("abc", "", "NaN", "inf"):
        with pytest.raises(ValueError):
            to_nanos(bad)
