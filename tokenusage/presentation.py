"""Turning query results into what the pages show: tables, CSV, deltas. No Streamlit here."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote

import pandas as pd

from tokenusage.config import profile_link
from tokenusage.money import exact_usd, format_usd
from tokenusage.queries import RankedUser, RankingPage, Totals

NAME_IN_FRAGMENT = r"#(.+)$"
CSV_COLUMNS = ("rank", "user_id", "name", "email", "plan", "spend_usd", "calls", "tokens")


def name_link(template: str | None, user_id: str, name: str) -> str | None:
    """Profile URL carrying the display name in its fragment, or None if the URL has one."""
    url = profile_link(template, user_id)
    if "#" in url:
        return None
    return f"{url}#{quote(name, safe='')}"


def names_are_links(template: str | None) -> bool:
    return "#" not in profile_link(template, "x")


def ranking_frame(page: RankingPage, template: str | None) -> pd.DataFrame:
    """The ranking page's table: rank, user_id, name (a profile link), spend_usd."""
    as_links = names_are_links(template)
    rows = []
    for row in page.rows:
        rows.append({
            "rank": row.rank,
            "user_id": row.user_id,
            "name": name_link(template, row.user_id, row.name) if as_links else row.name,
            "spend_usd": format_usd(row.spend_nanos),
            "plan": row.plan,
            "calls": row.events,
            "profile": profile_link(template, row.user_id),
        })
    columns = ["rank", "user_id", "name", "spend_usd", "plan", "calls", "profile"]
    return pd.DataFrame(rows, columns=columns)


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(text: str) -> str:
    """Text a spreadsheet will not run as a formula (a leading quote, as OWASP advises)."""
    return f"'{text}" if text.startswith(_FORMULA_STARTS) else text


def ranking_csv(rows: Iterable[RankedUser]) -> bytes:
    """The whole ranking as CSV with exact amounts (9 decimals, no rounding)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([row.rank, _cell(row.user_id), _cell(row.name), _cell(row.email),
                         _cell(row.plan), exact_usd(row.spend_nanos), row.events, row.tokens])
    return buffer.getvalue().encode("utf-8")


def percent_change(current: int, previous: int) -> str | None:
    """'+12.3%' style change against the previous period, None when it has no meaning."""
    if previous <= 0:
        return None
    change = (current - previous) * 100 / previous
    return f"{change:+.1f}%"


def rows_caption(page: RankingPage) -> str:
    if not page.rows:
        return f"No rows on page {page.page} of {page.pages}."
    return f"Rows {page.first_row:,}–{page.last_row:,} of {page.matching:,}"


@dataclass(frozen=True)
class Figure:
    label: str
    value: str
    delta: str | None
    delta_color: str


def headline(totals: Totals, previous: Totals | None) -> list[Figure]:
    """The period's headline figures, each with its change against the previous period.

    Spend going up is a cost, so its delta is drawn in the inverse colour.
    """
    def change(now: int, then: int | None) -> str | None:
        return percent_change(now, then) if previous is not None else None

    before = previous or Totals()
    return [
        Figure("Total spend", format_usd(totals.spend_nanos),
               change(totals.spend_nanos, before.spend_nanos), "inverse"),
        Figure("Users with spend", f"{totals.users:,}", change(totals.users, before.users),
               "normal"),
        Figure("Average per user", format_usd(totals.average_nanos),
               change(totals.average_nanos, before.average_nanos), "inverse"),
        Figure("LLM calls", f"{totals.events:,}", change(totals.events, before.events),
               "normal"),
    ]


_MARKDOWN_SPECIAL = set("\\`*_{}[]()<>#+-.!|~$:")


def plain(text: str) -> str:
    """Database text made safe for Streamlit markdown: shown as typed, never as markup."""
    return "".join(f"\\{ch}" if ch in _MARKDOWN_SPECIAL else ch for ch in str(text))
