"""The ranking page's filters and their form in the URL query string.

Parsing never fails: a malformed parameter falls back to its default and yields
a short notice that the page shows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from tokenusage.periods import Period
from tokenusage.queries import DEFAULT_PAGE_SIZE, MAX_PAGE, PAGE_SIZES

MAX_SEARCH_LENGTH = 200
_WHOLE = re.compile(r"[0-9]{1,9}")
KEYS = ("period", "date_range", "search", "page_size", "page")


@dataclass(frozen=True)
class Filters:
    period: Period = Period.LAST_30_DAYS
    date_range: tuple[date, date] | None = None
    search: str = ""
    page_size: int = DEFAULT_PAGE_SIZE
    page: int = 1


@dataclass
class Parsed:
    filters: Filters
    notices: list[str] = field(default_factory=list)
    present: set[str] = field(default_factory=set)


def _one(value: Any) -> str:
    if isinstance(value, list | tuple):
        return str(value[-1]) if value else ""
    return str(value)


def format_date_range(value: tuple[date, date]) -> str:
    return f"{value[0].isoformat()}/{value[1].isoformat()}"


def parse_date_range(text: str) -> tuple[date, date]:
    """ISO 8601 interval of two dates, `2026-11-01/2026-11-30` (a single date means one day)."""
    parts = text.split("/")
    if len(parts) == 1:
        parts = [parts[0], parts[0]]
    if len(parts) != 2:
        raise ValueError(text)
    start, end = (date.fromisoformat(p.strip()) for p in parts)
    return (start, end) if start <= end else (end, start)


def parse(params: Mapping[str, Any]) -> Parsed:
    """Filters from query parameters; unknown parameters are ignored."""
    result = Parsed(Filters())
    f = result.filters
    changes: dict[str, Any] = {}

    def bad(key: str, raw: str, why: str) -> None:
        shown = " ".join((raw if len(raw) <= 40 else raw[:40] + "…").split())
        shown = shown.replace("`", "'")  # one line, no backtick: it stays a code span
        result.notices.append(f"Ignored `{key}={shown}` in the link: {why}.")

    if "period" in params:
        raw = _one(params["period"])
        try:
            changes["period"] = Period(raw)
            result.present.add("period")
        except ValueError:
            bad("period", raw, "expected one of " + ", ".join(p.value for p in Period))
    if "date_range" in params:
        raw = _one(params["date_range"])
        try:
            changes["date_range"] = parse_date_range(raw)
            result.present.add("date_range")
        except ValueError:
            bad("date_range", raw, "expected two dates like 2026-11-01/2026-11-30")
    if "search" in params:
        raw = _one(params["search"])
        changes["search"] = raw[:MAX_SEARCH_LENGTH]
        result.present.add("search")
    if "page_size" in params:
        raw = _one(params["page_size"])
        if _WHOLE.fullmatch(raw) and int(raw) in PAGE_SIZES:
            changes["page_size"] = int(raw)
            result.present.add("page_size")
        else:
            bad("page_size", raw, "rows per page is one of " + ", ".join(map(str, PAGE_SIZES)))
    if "page" in params:
        raw = _one(params["page"])
        if _WHOLE.fullmatch(raw) and 1 <= int(raw) <= MAX_PAGE:
            changes["page"] = int(raw)
            result.present.add("page")
        else:
            bad("page", raw, f"a page is a whole number from 1 to {MAX_PAGE:,}")
    result.filters = replace(f, **changes)
    if result.filters.period is Period.CUSTOM and result.filters.date_range is None:
        result.notices.append("A custom period needs `date_range`; pick the dates.")
    return result


def to_params(filters: Filters) -> dict[str, str]:
    """The non-default filters as query parameters."""
    default = Filters()
    params: dict[str, str] = {}
    if filters.period is not default.period:
        params["period"] = filters.period.value
    if filters.period is Period.CUSTOM and filters.date_range:
        params["date_range"] = format_date_range(filters.date_range)
    if filters.search:
        params["search"] = filters.search
    if filters.page_size != default.page_size:
        params["page_size"] = str(filters.page_size)
    if filters.page != default.page:
        params["page"] = str(filters.page)
    return params
