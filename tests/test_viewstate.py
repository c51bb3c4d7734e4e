"""Filters in the URL: valid values round-trip, malformed ones fall back with a notice."""

from datetime import date

import pytest

from tokenusage.periods import Period
from tokenusage.viewstate import Filters, parse, to_params


def test_round_trip():
    filters = Filters(Period.CUSTOM, (date(2026, 11, 1), date(2026, 11, 30)), "анна 100%", 100, 3)
    params = to_params(filters)
    assert params == {"period": "custom", "date_range": "2026-11-01/2026-11-30",
                      "search": "анна 100%", "page_size": "100", "page": "3"}
    parsed = parse(params)
    assert parsed.filters == filters and parsed.notices == []


def test_defaults_stay_out_of_the_url():
    assert to_params(Filters()) == {}
    assert parse({}).filters == Filters()


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"period": "week"}, "period"),
        ({"period": ""}, "period"),
        ({"date_range": "2026-13-01/2026-11-30"}, "date_range"),
        ({"date_range": "yesterday"}, "date_range"),
        ({"date_range": "2026-11-01/2026-11-02/2026-11-03"}, "date_range"),
        ({"page_size": "33"}, "page_size"),
        ({"page_size": "-10"}, "page_size"),
        ({"page": "0"}, "page"),
        ({"page": "two"}, "page"),
        ({"page": "1.5"}, "page"),
    ],
)
def test_malformed_values_fall_back_with_a_notice(params, key):
    parsed = parse(params)
    assert getattr(parsed.filters, key) == getattr(Filters(), key)
    assert len(parsed.notices) == 1 and f"`{key}=" in parsed.notices[0]
    assert key not in parsed.present


def test_other_parameters_survive_a_bad_one():
    parsed = parse({"period": "all", "page_size": "7", "page": "4", "search": "bob"})
    assert parsed.filters == Filters(Period.ALL, None, "bob", 25, 4)
    assert parsed.present == {"period", "page", "search"}


def test_single_date_and_reversed_range():
    assert parse({"date_range": "2026-11-05"}).filters.date_range == (
        date(2026, 11, 5), date(2026, 11, 5))
    assert parse({"date_range": "2026-11-30/2026-11-01"}).filters.date_range == (
        date(2026, 11, 1), date(2026, 11, 30))


def test_custom_without_dates_asks_for_them():
    parsed = parse({"period": "custom"})
    assert parsed.filters.period is Period.CUSTOM and parsed.filters.date_range is None
    assert any("date_range" in n for n in parsed.notices)


def test_long_search_is_cut_and_repeated_keys_take_the_last():
    assert len(parse({"search": "x" * 1000}).filters.search) == 200
    assert parse({"page": ["2", "5"]}).filters.page == 5


def test_a_notice_cannot_carry_markup():
    notice = parse({"period": "`[x](https://evil.example)`"}).notices[0]
    assert notice.count("`") == 2  # the raw value stays inside one code span


@pytest.mark.parametrize("raw", ["²", "٣", "99999999999999999999", "10000001"])
def test_odd_numbers_fall_back(raw):
    parsed = parse({"page": raw, "page_size": raw})
    assert (parsed.filters.page, parsed.filters.page_size) == (1, 25)
    assert len(parsed.notices) == 2


def test_a_notice_stays_on_one_line():
    notice = parse({"period": "x\n\n[Login](https://evil.example)"}).notices[0]
    assert "\n" not in notice and notice.count("`") == 2
